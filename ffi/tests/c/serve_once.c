/*
 * Serves stream "cam" on 127.0.0.1 until one viewer has joined and left, then stops and frees
 * everything; for the AddressSanitizer test in ffi/tests/c_api.rs, which connects a native
 * WebRTC viewer to the WebSocket URL printed on the first line.
 *
 * Pushes come from three threads at once, as in an application with separate capture threads:
 * raw RGBA video into "cam" (through one handle), Opus packets into "cam" (through a second
 * handle), and raw video into a second stream "side". The main thread reads stats meanwhile.
 * Exits 0 when a viewer joined and left and every push succeeded, 3 when no viewer came
 * within 30 s.
 *
 * Only viewers with ?token=good are admitted (the authorization callback, which may run on
 * several threads at once); the test sends one with a bad token first, which is refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtcast.h"

#define W 320
#define H 240

static atomic_int joined = 0;
static atomic_int left = 0;
static atomic_int stop = 0;
static atomic_int admitted = 0;
static atomic_int refused = 0;

static bool authorize(const struct rtcast_auth_request *req, void *userdata) {
    int *calls = userdata;
    atomic_fetch_add((atomic_int *)calls, 1);
    bool ok = req->token != NULL && strcmp(req->token, "good") == 0 &&
              strcmp(req->stream, "cam") == 0 && req->protocol == RTCAST_PROTOCOL_WEBSOCKET &&
              strncmp(req->remote, "127.0.0.1:", 10) == 0;
    atomic_fetch_add(ok ? &admitted : &refused, 1);
    return ok;
}

static void must(enum rtcast_result r, const char *what) {
    if (r != RTCAST_OK) {
        char msg[512];
        size_t len = 0;
        rtcast_last_error_message(msg, sizeof msg, &len);
        fprintf(stderr, "serve_once: %s: %s: %s\n", what, rtcast_result_name(r), msg);
        exit(1);
    }
}

static void on_event(const struct rtcast_event *e, void *userdata) {
    (void)userdata;
    if (e->kind == RTCAST_EVENT_VIEWER_JOINED) {
        printf("joined %llu %s %s\n", (unsigned long long)e->viewer, e->stream, e->remote);
        atomic_fetch_add(&joined, 1);
    } else if (e->kind == RTCAST_EVENT_VIEWER_LEFT) {
        printf("left %llu %s\n", (unsigned long long)e->viewer, e->stream);
        atomic_fetch_add(&left, 1);
        atomic_store(&stop, 1);
    }
    fflush(stdout);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Raw video at 30 fps into the stream behind `arg`, until stopped or 30 s passed. */
static void *push_video(void *arg) {
    struct rtcast_stream *stream = arg;
    uint8_t *frame = malloc(W * H * 4);
    for (int n = 0; n < 30 * 30 && !atomic_load(&stop); n++) {
        memset(frame, (n * 4) & 255, W * H * 4);
        must(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W, H, frame, W * H * 4,
                                             RTCAST_PTS_NOW),
             "push_frame_packed");
        sleep_ms(33);
    }
    free(frame);
    return NULL;
}

/* 20 ms Opus packets (a silent CELT frame) into the stream behind `arg`. */
static void *push_audio(void *arg) {
    struct rtcast_stream *stream = arg;
    static const uint8_t silence[] = {0xf8, 0xff, 0xfe};
    for (int n = 0; n < 50 * 30 && !atomic_load(&stop); n++) {
        must(rtcast_stream_push_opus(stream, silence, sizeof silence, RTCAST_PTS_NOW),
             "push_opus");
        sleep_ms(20);
    }
    return NULL;
}

int main(void) {
    static atomic_int auth_calls = 0;
    struct rtcast_config *config = NULL;
    must(rtcast_config_new(&config), "config_new");
    must(rtcast_config_set_authorize(config, authorize, (void *)&auth_calls), "set_authorize");
    must(rtcast_config_set_bind(config, "127.0.0.1"), "set_bind");
    must(rtcast_config_set_port(config, 0), "set_port");
    must(rtcast_config_set_udp_port(config, 0), "set_udp_port");
    struct rtcast_server *server = NULL;
    must(rtcast_server_start(config, &server), "server_start");
    rtcast_config_free(config);
    must(rtcast_server_set_event_callback(server, on_event, NULL), "set_event_callback");
    struct rtcast_stream *video = NULL, *audio = NULL, *side = NULL;
    must(rtcast_server_stream(server, "cam", &video), "server_stream");
    must(rtcast_server_stream(server, "cam", &audio), "server_stream");
    must(rtcast_server_stream(server, "side", &side), "server_stream");
    char url[256];
    size_t len = 0;
    must(rtcast_server_ws_url(server, "cam", url, sizeof url, &len), "ws_url");
    printf("%s\n", url);
    fflush(stdout);

    pthread_t threads[3];
    pthread_create(&threads[0], NULL, push_video, video);
    pthread_create(&threads[1], NULL, push_audio, audio);
    pthread_create(&threads[2], NULL, push_video, side);
    struct rtcast_stream_stats stats;
    struct rtcast_viewer_stats figures[4];
    int figures_seen = 0;
    while (!atomic_load(&stop)) {
        must(rtcast_stream_stats(video, &stats), "stream_stats");
        size_t n = 0;
        must(rtcast_stream_viewer_stats(video, figures, 4, &n), "stream_viewer_stats");
        if (n == 1 && figures[0].bytes_sent > 0 && figures[0].bitrate_bps > 0 &&
            figures[0].protocol == RTCAST_PROTOCOL_WEBSOCKET &&
            figures[0].transport == RTCAST_TRANSPORT_UDP &&
            strncmp(figures[0].remote, "127.0.0.1:", 10) == 0 &&
            strcmp(figures[0].rendition, "v1") == 0 &&
            (figures[0].estimate_bps == -1 || figures[0].estimate_bps > 0)) {
            figures_seen = 1;
        }
        sleep_ms(100);
        if (stats.video_frames >= 30 * 30) {
            break; /* the video thread ran out of time: no viewer came */
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
    }
    must(rtcast_stream_stats(audio, &stats), "stream_stats");
    printf("cam: %llu video frames, %llu audio packets, %llu encoded\n",
           (unsigned long long)stats.video_frames, (unsigned long long)stats.audio_packets,
           (unsigned long long)stats.frames_encoded);
    must(rtcast_server_stop(server), "server_stop");
    rtcast_stream_free(video);
    rtcast_stream_free(audio);
    rtcast_stream_free(side);
    rtcast_server_free(server);
    printf("done joined=%d left=%d admitted=%d refused=%d calls=%d figures=%d\n",
           atomic_load(&joined), atomic_load(&left), atomic_load(&admitted),
           atomic_load(&refused), atomic_load(&auth_calls), figures_seen);
    return atomic_load(&joined) >= 1 && atomic_load(&left) >= 1 ? 0 : 3;
}
