/*
 * Serves stream "cam" (raw RGBA frames, 30 fps) on 127.0.0.1 until one viewer has joined and
 * left, then stops and frees everything; for the AddressSanitizer test in ffi/tests/c_api.rs,
 * which connects a native WebRTC viewer to the WebSocket URL printed on the first line.
 * Exits 0 when a viewer joined and left, 3 when none did within 30 s.
 */
#define _POSIX_C_SOURCE 200809L
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
    }
    fflush(stdout);
}

int main(void) {
    struct rtcast_config *config = NULL;
    must(rtcast_config_new(&config), "config_new");
    must(rtcast_config_set_bind(config, "127.0.0.1"), "set_bind");
    must(rtcast_config_set_port(config, 0), "set_port");
    must(rtcast_config_set_udp_port(config, 0), "set_udp_port");
    struct rtcast_server *server = NULL;
    must(rtcast_server_start(config, &server), "server_start");
    rtcast_config_free(config);
    must(rtcast_server_set_event_callback(server, on_event, NULL), "set_event_callback");
    struct rtcast_stream *stream = NULL;
    must(rtcast_server_stream(server, "cam", &stream), "server_stream");
    char url[256];
    size_t len = 0;
    must(rtcast_server_ws_url(server, "cam", url, sizeof url, &len), "ws_url");
    printf("%s\n", url);
    fflush(stdout);

    uint8_t *frame = malloc(W * H * 4);
    struct timespec tick = {0, 1000000000L / 30};
    for (int n = 0; n < 30 * 30 && atomic_load(&left) == 0; n++) {
        memset(frame, (n * 4) & 255, W * H * 4);
        must(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W, H, frame, W * H * 4,
                                             RTCAST_PTS_NOW),
             "push_frame_packed");
        nanosleep(&tick, NULL);
    }
    free(frame);
    must(rtcast_server_stop(server), "server_stop");
    rtcast_stream_free(stream);
    rtcast_server_free(server);
    printf("done joined=%d left=%d\n", atomic_load(&joined), atomic_load(&left));
    return atomic_load(&joined) >= 1 && atomic_load(&left) >= 1 ? 0 : 3;
}
