/*
 * pattern: serve a moving test pattern to browsers.
 *
 *   pattern [PORT] [SECONDS] [BIND]     (defaults: 8080, 60, 0.0.0.0)
 *
 * Starts an rtcast server, pushes 640x360 RGBA frames of a moving pattern at 30 fps for SECONDS
 * (the built-in encoder turns them into H.264 once for every viewer), prints the player URL and
 * every viewer event, then shuts down cleanly. Open the printed URL in a browser.
 *
 * Build: cc pattern.c $(pkg-config --cflags --libs rtcast) -o pattern
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtcast.h"

#define WIDTH 640
#define HEIGHT 360
#define FPS 30

static uint8_t frame[WIDTH * HEIGHT * 4];

/* Fails the program with rtcast's message when a call does not return RTCAST_OK. */
static void must(enum rtcast_result r, const char *what) {
    if (r == RTCAST_OK) {
        return;
    }
    char msg[512];
    size_t len = 0;
    if (rtcast_last_error_message(msg, sizeof msg, &len) != RTCAST_OK) {
        strcpy(msg, "(message too long)");
    }
    fprintf(stderr, "pattern: %s failed: %s: %s\n", what, rtcast_result_name(r), msg);
    exit(1);
}

/* Runs on rtcast's event thread, one event at a time. */
static void on_event(const struct rtcast_event *e, void *userdata) {
    (void)userdata;
    switch (e->kind) {
    case RTCAST_EVENT_VIEWER_JOINED:
        printf("viewer %llu joined %s from %s\n", (unsigned long long)e->viewer, e->stream,
               e->remote);
        break;
    case RTCAST_EVENT_VIEWER_LEFT:
        printf("viewer %llu left %s\n", (unsigned long long)e->viewer, e->stream);
        break;
    case RTCAST_EVENT_KEYFRAME_REQUESTED:
        printf("keyframe requested on %s (%s)\n", e->stream, e->rendition);
        break;
    case RTCAST_EVENT_BITRATE_HINT:
        printf("bitrate hint for %s: %llu bit/s\n", e->stream, (unsigned long long)e->bps);
        break;
    case RTCAST_EVENT_RENDITION_SWITCHED:
        printf("viewer %llu of %s switched from %s to %s at %llu bit/s\n",
               (unsigned long long)e->viewer, e->stream, e->from, e->to,
               (unsigned long long)e->estimate_bps);
        break;
    }
    fflush(stdout);
}

/* Diagonal colour bands scrolling right, and a white box bouncing across. */
static void draw(int n) {
    int box = 48, bx = (n * 6) % (WIDTH - box), by = (HEIGHT - box) / 2;
    for (int y = 0; y < HEIGHT; y++) {
        uint8_t *row = frame + (size_t)y * WIDTH * 4;
        for (int x = 0; x < WIDTH; x++) {
            int band = ((x + y - n * 4) & 255);
            int inside = x >= bx && x < bx + box && y >= by && y < by + box;
            row[x * 4 + 0] = inside ? 255 : (uint8_t)band;
            row[x * 4 + 1] = inside ? 255 : (uint8_t)(255 - band);
            row[x * 4 + 2] = inside ? 255 : (uint8_t)((band * 2) & 255);
            row[x * 4 + 3] = 255;
        }
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int seconds = argc > 2 ? atoi(argv[2]) : 60;
    const char *bind = argc > 3 ? argv[3] : "0.0.0.0";
    if (port < 0 || port > 65535 || seconds < 0) {
        fprintf(stderr, "usage: %s [PORT] [SECONDS] [BIND]\n", argv[0]);
        return 2;
    }

    struct rtcast_config *config = NULL;
    must(rtcast_config_new(&config), "rtcast_config_new");
    must(rtcast_config_set_bind(config, bind), "rtcast_config_set_bind");
    must(rtcast_config_set_port(config, (uint16_t)port), "rtcast_config_set_port");
    struct rtcast_server *server = NULL;
    must(rtcast_server_start(config, &server), "rtcast_server_start");
    rtcast_config_free(config);
    must(rtcast_server_set_event_callback(server, on_event, NULL), "set_event_callback");

    struct rtcast_stream *stream = NULL;
    must(rtcast_server_stream(server, "pattern", &stream), "rtcast_server_stream");
    char url[256];
    size_t len = 0;
    must(rtcast_server_url(server, "pattern", url, sizeof url, &len), "rtcast_server_url");
    printf("rtcast %s: watch at %s\n", rtcast_version(), url);
    must(rtcast_server_ws_url(server, "pattern", url, sizeof url, &len), "rtcast_server_ws_url");
    printf("players connect to %s\n", url);
    fflush(stdout);

    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (int n = 0; n < seconds * FPS; n++) {
        draw(n);
        int64_t pts_us = (int64_t)n * 1000000 / FPS;
        must(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, WIDTH, HEIGHT, frame,
                                             sizeof frame, pts_us),
             "rtcast_stream_push_frame_packed");
        next.tv_nsec += 1000000000L / FPS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec += 1;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }

    struct rtcast_stream_stats stats;
    must(rtcast_stream_stats(stream, &stats), "rtcast_stream_stats");
    /* After stop returns, no callback runs: the rest of main owns stdout alone. */
    must(rtcast_server_stop(server), "rtcast_server_stop");
    printf("pushed %llu frames, encoded %llu; stopped\n", (unsigned long long)stats.video_frames,
           (unsigned long long)stats.frames_encoded);
    rtcast_stream_free(stream);
    rtcast_server_free(server);
    return 0;
}
