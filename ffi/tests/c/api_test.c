/*
 * The C API as a C program sees it: every function refuses NULL and invalid arguments with an
 * error code and a message (and changes nothing), use after stop fails cleanly, _free(NULL) is a
 * no-op, a panic inside rtcast comes back as RTCAST_ERR_PANIC, and start -> push -> stop works.
 *
 * Built with -Wall -Wextra -Werror and run by ffi/tests/c_api.rs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtcast.h"

static int checks = 0;
static int failures = 0;

static const char *last_error(void) {
    static char buf[1024];
    size_t len = 0;
    if (rtcast_last_error_message(buf, sizeof buf, &len) != RTCAST_OK) {
        return "(rtcast_last_error_message failed)";
    }
    return buf;
}

/* Expects `got` to be `want`; a failure also needs a non-empty last error message. */
static void expect(enum rtcast_result got, enum rtcast_result want, const char *what, int line) {
    checks++;
    if (got != want) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s returned %s, expected %s (last error: %s)\n", line, what,
                rtcast_result_name(got), rtcast_result_name(want), last_error());
        return;
    }
    if (want != RTCAST_OK && last_error()[0] == '\0') {
        failures++;
        fprintf(stderr, "FAIL line %d: %s failed with an empty message\n", line, what);
    }
}

#define EXPECT(call, want) expect((call), (want), #call, __LINE__)
#define OK(call) EXPECT(call, RTCAST_OK)

static void check(int cond, const char *what, int line) {
    checks++;
    if (!cond) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s\n", line, what);
    }
}

#define CHECK(cond) check((cond), #cond, __LINE__)

/* The message of the last error contains `needle`. */
#define MESSAGE_HAS(needle) CHECK(strstr(last_error(), (needle)) != NULL)

#define W 64
#define H 48

static void test_version_and_errors(void) {
    CHECK(rtcast_version() != NULL && rtcast_version()[0] != '\0');
    CHECK(strcmp(rtcast_result_name(RTCAST_ERR_CLOSED), "RTCAST_ERR_CLOSED") == 0);
    /* A value that is no result code (an int cast from anywhere) is named, not undefined. */
    CHECK(strcmp(rtcast_result_name((enum rtcast_result)12345), "RTCAST_UNKNOWN") == 0);

    char buf[8];
    size_t len = 99;
    /* It never sets the last error itself (that would erase the message being read). */
    CHECK(rtcast_last_error_message(buf, sizeof buf, NULL) == RTCAST_ERR_NULL);
    CHECK(rtcast_last_error_message(NULL, 4, &len) == RTCAST_ERR_NULL);
    /* Make a known error, then read it through too small a buffer and a right one. */
    EXPECT(rtcast_config_new(NULL), RTCAST_ERR_NULL);
    CHECK(rtcast_last_error_message(NULL, 0, &len) == RTCAST_ERR_BUFFER_TOO_SMALL && len > 0);
    char full[256];
    size_t full_len = 0;
    OK(rtcast_last_error_message(full, sizeof full, &full_len));
    CHECK(full_len == len && strlen(full) == len);
    CHECK(strstr(full, "out_config is NULL") != NULL);
}

static void test_config(void) {
    struct rtcast_config *cfg = NULL;
    OK(rtcast_config_new(&cfg));
    CHECK(cfg != NULL);

    EXPECT(rtcast_config_set_bind(NULL, "127.0.0.1"), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_bind(cfg, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_bind(cfg, "not-an-ip"), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("not-an-ip");
    EXPECT(rtcast_config_set_port(NULL, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_udp_port(NULL, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_public_ip(NULL, "203.0.113.1"), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_public_ip(cfg, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_public_ip(cfg, "300.1.2.3"), RTCAST_ERR_INVALID_ARGUMENT);
    EXPECT(rtcast_config_add_ice_server(NULL, "stun:stun.example:3478", NULL, NULL),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_ice_server(cfg, NULL, NULL, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_tls(NULL, "c.pem", "k.pem"), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_tls(cfg, NULL, "k.pem"), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_tls(cfg, "c.pem", NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_tls(cfg, "", "k.pem"), RTCAST_ERR_INVALID_ARGUMENT);
    EXPECT(rtcast_config_set_max_viewers(NULL, 1), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_max_viewers_per_stream(NULL, 1), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_max_connecting_per_address(NULL, 1), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_max_connecting(NULL, 1), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_connect_timeout_ms(NULL, 1000), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_consent_timeout_ms(NULL, 1000), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_max_message_bytes(NULL, 4096), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_cors_origin(NULL, "https://a.example"), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_cors_origin(cfg, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_cors_origin(cfg, " "), RTCAST_ERR_INVALID_ARGUMENT);
    EXPECT(rtcast_config_set_authorize(NULL, NULL, NULL), RTCAST_ERR_NULL);

    /* Limits are checked when the server starts; a failed start leaves *out untouched. */
    OK(rtcast_config_set_bind(cfg, "127.0.0.1"));
    OK(rtcast_config_set_port(cfg, 0));
    OK(rtcast_config_set_udp_port(cfg, 0));
    OK(rtcast_config_set_max_viewers(cfg, 0));
    struct rtcast_server *sentinel = (struct rtcast_server *)&checks;
    struct rtcast_server *server = sentinel;
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("viewer limits");
    CHECK(server == sentinel);
    OK(rtcast_config_set_max_viewers(cfg, 10));
    OK(rtcast_config_set_max_connecting_per_address(cfg, 0));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("max_connecting_per_address");
    CHECK(server == sentinel);
    OK(rtcast_config_set_max_connecting_per_address(cfg, 8));
    OK(rtcast_config_set_max_connecting(cfg, 0));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("max_connecting)");
    CHECK(server == sentinel);
    OK(rtcast_config_set_max_connecting(cfg, 100));
    OK(rtcast_config_set_connect_timeout_ms(cfg, 0));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    OK(rtcast_config_set_connect_timeout_ms(cfg, 5000));
    OK(rtcast_config_set_consent_timeout_ms(cfg, 0));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    OK(rtcast_config_set_consent_timeout_ms(cfg, 5000));
    OK(rtcast_config_set_max_message_bytes(cfg, 100));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("max_ws_message_bytes");
    OK(rtcast_config_set_max_message_bytes(cfg, 8192));
    OK(rtcast_config_add_cors_origin(cfg, "https://a.example"));
    OK(rtcast_config_add_cors_origin(cfg, "https://b.example"));
    OK(rtcast_config_set_authorize(cfg, NULL, NULL));
    EXPECT(rtcast_config_set_media_loops(NULL, 2), RTCAST_ERR_NULL);
    OK(rtcast_config_set_media_loops(cfg, 63));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("media_loops");
    CHECK(server == sentinel);
    OK(rtcast_config_set_media_loops(cfg, 2));

    /* ICE-TCP's port and the candidate policy; an unknown word is refused at once. */
    EXPECT(rtcast_config_set_tcp_port(NULL, 0), RTCAST_ERR_NULL);
    OK(rtcast_config_set_tcp_port(cfg, 0));
    EXPECT(rtcast_config_set_candidates(cfg, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_candidates(cfg, "udp,quic"), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("quic");
    OK(rtcast_config_set_candidates(cfg, "udp,tcp"));
    EXPECT(rtcast_config_set_turn_secret(NULL, "s3cret", 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_set_turn_secret(cfg, NULL, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_turn_url(NULL, "turn:127.0.0.1:3478"), RTCAST_ERR_NULL);
    EXPECT(rtcast_config_add_turn_url(cfg, NULL), RTCAST_ERR_NULL);
    OK(rtcast_config_set_turn_secret(cfg, "s3cret", 600));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("turn_secret has no URL");
    CHECK(server == sentinel);
    OK(rtcast_config_add_turn_url(cfg, "stun:127.0.0.1:3478"));
    EXPECT(rtcast_server_start(cfg, &server), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("not a TURN URL");
    CHECK(server == sentinel);

    /* TLS paths are taken as given. (The core reads the files after start returns, so a
     * missing file is not yet RTCAST_ERR_TLS from rtcast_server_start: not tested here.) */
    OK(rtcast_config_set_tls(cfg, "/nonexistent/cert.pem", "/nonexistent/key.pem"));

    EXPECT(rtcast_server_start(NULL, &server), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_start(cfg, NULL), RTCAST_ERR_NULL);

    rtcast_config_free(cfg);
    rtcast_config_free(NULL);
}

static struct rtcast_config *loopback_config(void) {
    struct rtcast_config *cfg = NULL;
    OK(rtcast_config_new(&cfg));
    OK(rtcast_config_set_bind(cfg, "127.0.0.1"));
    OK(rtcast_config_set_port(cfg, 0));
    OK(rtcast_config_set_udp_port(cfg, 0));
    OK(rtcast_config_add_public_ip(cfg, "203.0.113.7"));
    OK(rtcast_config_add_ice_server(cfg, "stun:stun.example.org:3478", NULL, NULL));
    OK(rtcast_config_add_turn_url(cfg, "turn:127.0.0.1:3478?transport=udp"));
    OK(rtcast_config_set_turn_secret(cfg, "s3cret", 0));
    OK(rtcast_config_set_max_viewers_per_stream(cfg, 4));
    OK(rtcast_config_set_connect_timeout_ms(cfg, 5000));
    return cfg;
}

static int events_seen = 0;

static void on_event(const struct rtcast_event *event, void *userdata) {
    (void)event;
    *(int *)userdata += 1;
}

static void test_bind_conflict(struct rtcast_server *server) {
    uint16_t port = 0;
    OK(rtcast_server_port(server, &port));
    CHECK(port != 0);
    struct rtcast_config *cfg = loopback_config();
    OK(rtcast_config_set_port(cfg, port));
    struct rtcast_server *second = NULL;
    EXPECT(rtcast_server_start(cfg, &second), RTCAST_ERR_BIND);
    CHECK(second == NULL);
    rtcast_config_free(cfg);
}

static void test_server_arguments(struct rtcast_server *server) {
    struct rtcast_stream *stream = NULL;
    EXPECT(rtcast_server_stream(NULL, "cam", &stream), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stream(server, NULL, &stream), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stream(server, "cam", NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stream(server, "bad name!", &stream), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("bad name!");
    EXPECT(rtcast_server_stream(server, "", &stream), RTCAST_ERR_INVALID_ARGUMENT);
    CHECK(stream == NULL);

    bool removed = true;
    EXPECT(rtcast_server_remove_stream(NULL, "cam", &removed), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_remove_stream(server, NULL, &removed), RTCAST_ERR_NULL);
    OK(rtcast_server_remove_stream(server, "never-made", &removed));
    CHECK(!removed);
    OK(rtcast_server_remove_stream(server, "never-made", NULL));

    char url[256];
    size_t len = 0;
    EXPECT(rtcast_server_url(NULL, "cam", url, sizeof url, &len), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_url(server, NULL, url, sizeof url, &len), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_url(server, "cam", url, sizeof url, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_url(server, "cam", NULL, 10, &len), RTCAST_ERR_NULL);
    strcpy(url, "untouched");
    EXPECT(rtcast_server_url(server, "cam", url, 10, &len), RTCAST_ERR_BUFFER_TOO_SMALL);
    CHECK(strcmp(url, "untouched") == 0);
    CHECK(len > 10);
    size_t needed = len;
    OK(rtcast_server_url(server, "cam", url, needed + 1, &len));
    CHECK(len == needed && strlen(url) == len);
    CHECK(strncmp(url, "http://127.0.0.1:", 17) == 0);
    CHECK(strstr(url, "/cam/embed.html") != NULL);
    OK(rtcast_server_ws_url(server, "cam", url, sizeof url, &len));
    CHECK(strncmp(url, "ws://127.0.0.1:", 15) == 0 && strstr(url, "/cam/webrtc") != NULL);
    EXPECT(rtcast_server_ws_url(NULL, "cam", url, sizeof url, &len), RTCAST_ERR_NULL);
    OK(rtcast_server_whep_url(server, "cam", url, sizeof url, &len));
    CHECK(strncmp(url, "http://127.0.0.1:", 17) == 0 && strstr(url, "/cam/whep") != NULL);
    EXPECT(rtcast_server_whep_url(NULL, "cam", url, sizeof url, &len), RTCAST_ERR_NULL);

    uint16_t port = 0;
    EXPECT(rtcast_server_port(NULL, &port), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_port(server, NULL), RTCAST_ERR_NULL);
    /* The loopback config picks free ports: ICE-TCP has one of its own. */
    uint16_t http_port = 0, tcp_port = 0;
    OK(rtcast_server_port(server, &http_port));
    OK(rtcast_server_tcp_port(server, &tcp_port));
    CHECK(tcp_port != 0 && tcp_port != http_port);
    EXPECT(rtcast_server_tcp_port(NULL, &tcp_port), RTCAST_ERR_NULL);

    struct rtcast_server_stats stats;
    EXPECT(rtcast_server_stats(NULL, &stats), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stats(server, NULL), RTCAST_ERR_NULL);

    EXPECT(rtcast_server_set_event_callback(NULL, on_event, &events_seen), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stop(NULL), RTCAST_ERR_NULL);
}

static uint8_t rgba[W * H * 4];
static uint8_t i420[W * H * 3 / 2];

static void test_push_arguments(struct rtcast_stream *stream) {
    static const uint8_t not_annexb[] = {1, 2, 3, 4, 5, 6};
    static const uint8_t opus[] = {0xf8, 0xff, 0xfe};

    EXPECT(rtcast_stream_push_h264(NULL, not_annexb, sizeof not_annexb, RTCAST_PTS_NOW),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_h264(stream, NULL, 4, RTCAST_PTS_NOW), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_h264(stream, not_annexb, sizeof not_annexb, RTCAST_PTS_NOW),
           RTCAST_ERR_INVALID_DATA);
    EXPECT(rtcast_stream_push_h264(stream, not_annexb, sizeof not_annexb, -5),
           RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("RTCAST_PTS_NOW");

    /* An H.264 stream takes no VP8 (see test_stream_options for a VP8 stream). */
    EXPECT(rtcast_stream_push_vp8(stream, not_annexb, sizeof not_annexb, 0),
           RTCAST_ERR_UNSUPPORTED);
    MESSAGE_HAS("carries H.264");
    EXPECT(rtcast_stream_push_vp8(NULL, not_annexb, sizeof not_annexb, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_vp8(stream, NULL, 0, 0), RTCAST_ERR_NULL);

    EXPECT(rtcast_stream_push_opus(NULL, opus, sizeof opus, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_opus(stream, NULL, 3, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_opus(stream, opus, 0, 0), RTCAST_ERR_INVALID_DATA);
    OK(rtcast_stream_push_opus(stream, opus, sizeof opus, 20000));

    EXPECT(rtcast_stream_push_frame_packed(NULL, RTCAST_FORMAT_RGBA, W, H, rgba, sizeof rgba, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W, H, NULL, sizeof rgba, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W, H, rgba, 100, 0),
           RTCAST_ERR_INVALID_FRAME);
    MESSAGE_HAS("needs 12288 bytes");
    EXPECT(rtcast_stream_push_frame_packed(stream, 99, W, H, rgba, sizeof rgba, 0),
           RTCAST_ERR_INVALID_ARGUMENT);
    EXPECT(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W + 1, H, rgba,
                                           sizeof rgba, 0),
           RTCAST_ERR_INVALID_FRAME);
    MESSAGE_HAS("odd");
    /* BGR24 (OpenCV's layout) is 3 bytes a pixel: the RGBA buffer's first 3/4 is one frame. */
    OK(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_BGR24, W, H, rgba, W * H * 3, 0));
    EXPECT(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_BGR24, W, H, rgba, sizeof rgba,
                                           0),
           RTCAST_ERR_INVALID_FRAME);
    MESSAGE_HAS("bgr24");

    const uint8_t *planes[3] = {i420, i420 + W * H, i420 + W * H + W * H / 4};
    size_t strides[3] = {W, W / 2, W / 2};
    size_t sizes[3] = {W * H, W * H / 4, W * H / 4};
    EXPECT(rtcast_stream_push_frame(NULL, RTCAST_FORMAT_I420, W, H, planes, strides, sizes, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, NULL, strides, sizes, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, planes, NULL, sizes, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, planes, strides, NULL, 0),
           RTCAST_ERR_NULL);
    const uint8_t *missing[3] = {i420, NULL, NULL};
    EXPECT(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, missing, strides, sizes, 0),
           RTCAST_ERR_NULL);
    size_t short_sizes[3] = {W * H, W * H / 4, 10};
    EXPECT(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, planes, strides,
                                    short_sizes, 0),
           RTCAST_ERR_INVALID_FRAME);
    size_t bad_strides[3] = {W - 2, W / 2, W / 2};
    EXPECT(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, planes, bad_strides, sizes,
                                    0),
           RTCAST_ERR_INVALID_FRAME);
    MESSAGE_HAS("stride");
    EXPECT(rtcast_stream_push_frame(stream, 6, W, H, planes, strides, sizes, 0),
           RTCAST_ERR_INVALID_ARGUMENT);
    OK(rtcast_stream_push_frame(stream, RTCAST_FORMAT_I420, W, H, planes, strides, sizes, 0));

    struct rtcast_stream_stats stats;
    EXPECT(rtcast_stream_stats(NULL, &stats), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_stats(stream, NULL), RTCAST_ERR_NULL);

    /* No viewer: the count is 0, and asking for it needs no room. */
    size_t count = 99;
    OK(rtcast_stream_viewer_stats(stream, NULL, 0, &count));
    CHECK(count == 0);
    struct rtcast_viewer_stats figures[2];
    EXPECT(rtcast_stream_viewer_stats(NULL, figures, 2, &count), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_viewer_stats(stream, figures, 2, NULL), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_viewer_stats(stream, NULL, 2, &count), RTCAST_ERR_NULL);
}

static void test_stream_options(struct rtcast_server *server) {
    /* A VP8 keyframe header of 16x16 pixels with a 1-byte first partition. */
    static const uint8_t vp8_key[] = {0x30, 0x00, 0x00, 0x9d, 0x01, 0x2a, 16, 0, 16, 0, 0xaa};
    static const uint8_t annexb[] = {0, 0, 0, 1, 0x65, 0x88};
    static const uint8_t opus[] = {0xf8, 0xff, 0xfe};

    EXPECT(rtcast_stream_options_new(NULL), RTCAST_ERR_NULL);
    struct rtcast_stream_options *opts = NULL;
    OK(rtcast_stream_options_new(&opts));
    CHECK(opts != NULL);
    EXPECT(rtcast_stream_options_set_video_codec(NULL, RTCAST_CODEC_VP8), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_options_set_video_codec(opts, 7), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("RTCAST_CODEC_VP8 (1)");
    EXPECT(rtcast_stream_options_set_audio(NULL, false), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_options_set_encoder_bitrate(NULL, 1000000), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_options_set_encoder_max_fps(NULL, 25), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_options_set_keyframe_interval_ms(NULL, 2000), RTCAST_ERR_NULL);
    OK(rtcast_stream_options_set_video_codec(opts, RTCAST_CODEC_VP8));
    OK(rtcast_stream_options_set_audio(opts, false));

    struct rtcast_stream *vp8 = NULL;
    EXPECT(rtcast_server_stream_with(NULL, "v", opts, &vp8), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stream_with(server, NULL, opts, &vp8), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stream_with(server, "v", NULL, &vp8), RTCAST_ERR_NULL);
    EXPECT(rtcast_server_stream_with(server, "v", opts, NULL), RTCAST_ERR_NULL);
    CHECK(vp8 == NULL);
    OK(rtcast_server_stream_with(server, "v", opts, &vp8));
    CHECK(vp8 != NULL);
    OK(rtcast_stream_push_vp8(vp8, vp8_key, sizeof vp8_key, 0));
    EXPECT(rtcast_stream_push_vp8(vp8, annexb, sizeof annexb, 33333), RTCAST_ERR_INVALID_DATA);
    MESSAGE_HAS("not a VP8 frame");
    EXPECT(rtcast_stream_push_h264(vp8, annexb, sizeof annexb, 33333), RTCAST_ERR_UNSUPPORTED);
    MESSAGE_HAS("carries VP8");
    EXPECT(rtcast_stream_push_frame_packed(vp8, RTCAST_FORMAT_RGBA, W, H, rgba, sizeof rgba, 0),
           RTCAST_ERR_UNSUPPORTED);
    EXPECT(rtcast_stream_push_opus(vp8, opus, sizeof opus, 0), RTCAST_ERR_UNSUPPORTED);
    MESSAGE_HAS("without audio");
    struct rtcast_stream_stats stats;
    OK(rtcast_stream_stats(vp8, &stats));
    CHECK(stats.video_frames == 1 && stats.audio_packets == 0);

    /* The same name with other tracks is refused; with the defaults (no options) it is found. */
    struct rtcast_stream_options *defaults = NULL;
    OK(rtcast_stream_options_new(&defaults));
    OK(rtcast_stream_options_set_encoder_bitrate(defaults, 500000));
    OK(rtcast_stream_options_set_encoder_max_fps(defaults, 25));
    OK(rtcast_stream_options_set_keyframe_interval_ms(defaults, 0));
    struct rtcast_stream *other = NULL;
    EXPECT(rtcast_server_stream_with(server, "v", defaults, &other), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("exists with VP8 video");
    CHECK(other == NULL);
    OK(rtcast_server_stream(server, "v", &other));
    CHECK(other != NULL);
    rtcast_stream_free(other);

    bool removed = false;
    OK(rtcast_server_remove_stream(server, "v", &removed));
    CHECK(removed);
    rtcast_stream_free(vp8);
    rtcast_stream_options_free(opts);
    rtcast_stream_options_free(defaults);
    rtcast_stream_options_free(NULL);
}

/* A ladder of renditions: each is pushed by name, the plain pushes are refused, and a ladder
 * that the core would refuse is refused when it is built, changing nothing. */
static void test_renditions(struct rtcast_server *server) {
    static const uint8_t annexb[] = {0, 0, 0, 1, 0x65, 0x88};

    struct rtcast_stream_options *opts = NULL;
    OK(rtcast_stream_options_new(&opts));
    EXPECT(rtcast_stream_options_add_rendition(NULL, 1280, 720, 2000000), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_options_add_rendition(opts, 1281, 720, 2000000),
           RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("rendition v1 is 1281x720");
    OK(rtcast_stream_options_add_rendition(opts, 1280, 720, 2000000));
    EXPECT(rtcast_stream_options_add_rendition(opts, 640, 360, 2000000),
           RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("lower bitrate than v1");
    EXPECT(rtcast_stream_options_add_rendition(opts, 640, 360, 1000), RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("rendition v2");
    OK(rtcast_stream_options_add_rendition(opts, 640, 360, 800000));
    OK(rtcast_stream_options_set_audio(opts, false));

    struct rtcast_stream *ladder = NULL;
    OK(rtcast_server_stream_with(server, "ladder", opts, &ladder));
    CHECK(ladder != NULL);
    OK(rtcast_stream_push_h264_rendition(ladder, "v2", annexb, sizeof annexb, 0));
    OK(rtcast_stream_push_h264_rendition(ladder, "v1", annexb, sizeof annexb, 0));
    EXPECT(rtcast_stream_push_h264_rendition(ladder, "v9", annexb, sizeof annexb, 0),
           RTCAST_ERR_INVALID_DATA);
    MESSAGE_HAS("no rendition 'v9'");
    MESSAGE_HAS("v1, v2");
    EXPECT(rtcast_stream_push_h264(ladder, annexb, sizeof annexb, 33333), RTCAST_ERR_INVALID_DATA);
    MESSAGE_HAS("push_h264_rendition");
    EXPECT(rtcast_stream_push_h264_rendition(NULL, "v1", annexb, sizeof annexb, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_h264_rendition(ladder, NULL, annexb, sizeof annexb, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_h264_rendition(ladder, "v1", NULL, 4, 0), RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_h264_rendition(ladder, "v1", annexb, sizeof annexb, -5),
           RTCAST_ERR_INVALID_ARGUMENT);
    EXPECT(rtcast_stream_push_vp8_rendition(ladder, "v1", annexb, sizeof annexb, 0),
           RTCAST_ERR_UNSUPPORTED);
    EXPECT(rtcast_stream_push_vp8_rendition(NULL, "v1", annexb, sizeof annexb, 0),
           RTCAST_ERR_NULL);
    EXPECT(rtcast_stream_push_vp8_rendition(ladder, NULL, annexb, sizeof annexb, 0),
           RTCAST_ERR_NULL);
    rtcast_stream_free(ladder);
    rtcast_stream_options_free(opts);

    /* At most RTCAST_MAX_RENDITIONS; the one too many is refused and the ladder still works. */
    OK(rtcast_stream_options_new(&opts));
    for (uint32_t i = 0; i < RTCAST_MAX_RENDITIONS; i++) {
        OK(rtcast_stream_options_add_rendition(opts, 320, 240, 2000000 - i * 100000));
    }
    EXPECT(rtcast_stream_options_add_rendition(opts, 320, 240, 100000),
           RTCAST_ERR_INVALID_ARGUMENT);
    MESSAGE_HAS("at most 8");
    struct rtcast_stream *eight = NULL;
    OK(rtcast_server_stream_with(server, "eight", opts, &eight));
    OK(rtcast_stream_push_h264_rendition(eight, "v8", annexb, sizeof annexb, RTCAST_PTS_NOW));
    EXPECT(rtcast_stream_push_h264_rendition(eight, "v9", annexb, sizeof annexb, RTCAST_PTS_NOW),
           RTCAST_ERR_INVALID_DATA);
    rtcast_stream_free(eight);
    rtcast_stream_options_free(opts);

    /* One rendition whose encoder follows its viewers: "v1" names it, plain pushes work. */
    OK(rtcast_stream_options_new(&opts));
    EXPECT(rtcast_stream_options_set_follow_viewers_floor_bps(NULL, 300000), RTCAST_ERR_NULL);
    OK(rtcast_stream_options_set_follow_viewers_floor_bps(opts, 300000));
    struct rtcast_stream *follow = NULL;
    OK(rtcast_server_stream_with(server, "follow", opts, &follow));
    OK(rtcast_stream_push_h264(follow, annexb, sizeof annexb, 0));
    OK(rtcast_stream_push_h264_rendition(follow, "v1", annexb, sizeof annexb, 33333));
    EXPECT(rtcast_stream_push_h264_rendition(follow, "v2", annexb, sizeof annexb, 66666),
           RTCAST_ERR_INVALID_DATA);
    MESSAGE_HAS("its renditions are v1");
    rtcast_stream_free(follow);
    rtcast_stream_options_free(opts);

    bool removed = false;
    OK(rtcast_server_remove_stream(server, "ladder", &removed));
    CHECK(removed);
    OK(rtcast_server_remove_stream(server, "eight", &removed));
    CHECK(removed);
    OK(rtcast_server_remove_stream(server, "follow", &removed));
    CHECK(removed);
}

#ifdef RTCAST_TEST_HOOKS
/* Built with cargo feature test-hooks; not in the public header. */
enum rtcast_result rtcast_test_force_panic(void);
#endif

static void test_panic_is_caught(struct rtcast_server *server) {
#ifdef RTCAST_TEST_HOOKS
    EXPECT(rtcast_test_force_panic(), RTCAST_ERR_PANIC);
    MESSAGE_HAS("panic");
#endif
    /* The library goes on working. */
    uint16_t port = 0;
    OK(rtcast_server_port(server, &port));
    CHECK(port != 0);
}

static void test_start_push_stop(void) {
    struct rtcast_config *cfg = loopback_config();
    struct rtcast_server *server = NULL;
    OK(rtcast_server_start(cfg, &server));
    rtcast_config_free(cfg); /* the server does not need it any more */
    if (server == NULL) {
        return;
    }
    OK(rtcast_server_set_event_callback(server, on_event, &events_seen));
    /* Replacing the callback, and removing it, are fine too. */
    OK(rtcast_server_set_event_callback(server, NULL, NULL));
    OK(rtcast_server_set_event_callback(server, on_event, &events_seen));

    test_bind_conflict(server);
    test_server_arguments(server);

    struct rtcast_stream *stream = NULL;
    OK(rtcast_server_stream(server, "cam", &stream));
    struct rtcast_stream *same = NULL;
    OK(rtcast_server_stream(server, "cam", &same));
    CHECK(stream != NULL && same != NULL);

    test_push_arguments(stream);
    test_stream_options(server);
    test_renditions(server);
    test_panic_is_caught(server);

    for (int i = 0; i < 30; i++) {
        memset(rgba, i * 8, sizeof rgba);
        OK(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W, H, rgba, sizeof rgba,
                                           (int64_t)i * 33333));
    }
    struct rtcast_stream_stats sstats;
    OK(rtcast_stream_stats(same, &sstats));
    CHECK(sstats.video_frames == 32); /* the BGR24 and I420 frames of test_push_arguments, then 30 */
    CHECK(sstats.audio_packets == 1);
    CHECK(sstats.viewers == 0);

    struct rtcast_server_stats stats;
    OK(rtcast_server_stats(server, &stats));
    CHECK(stats.streams == 1 && stats.viewers == 0);

    /* A removed stream refuses pushes through every handle; removing it again says so. */
    struct rtcast_stream *gone = NULL;
    OK(rtcast_server_stream(server, "gone", &gone));
    bool removed = false;
    OK(rtcast_server_remove_stream(server, "gone", &removed));
    CHECK(removed);
    EXPECT(rtcast_stream_push_frame_packed(gone, RTCAST_FORMAT_RGBA, W, H, rgba, sizeof rgba,
                                           RTCAST_PTS_NOW),
           RTCAST_ERR_CLOSED);
    MESSAGE_HAS("gone");
    OK(rtcast_server_remove_stream(server, "gone", &removed));
    CHECK(!removed);
    rtcast_stream_free(gone);

    /* Stop, then use after stop. */
    OK(rtcast_server_stop(server));
    OK(rtcast_server_stop(server));
    struct rtcast_stream *late = NULL;
    EXPECT(rtcast_server_stream(server, "cam", &late), RTCAST_ERR_STOPPED);
    CHECK(late == NULL);
    EXPECT(rtcast_stream_push_frame_packed(stream, RTCAST_FORMAT_RGBA, W, H, rgba, sizeof rgba,
                                           RTCAST_PTS_NOW),
           RTCAST_ERR_CLOSED);
    EXPECT(rtcast_stream_push_opus(same, (const uint8_t *)"abc", 3, RTCAST_PTS_NOW),
           RTCAST_ERR_CLOSED);
    char url[128];
    size_t len = 0;
    EXPECT(rtcast_server_url(server, "cam", url, sizeof url, &len), RTCAST_ERR_STOPPED);
    EXPECT(rtcast_server_stats(server, &stats), RTCAST_ERR_STOPPED);
    EXPECT(rtcast_server_remove_stream(server, "cam", &removed), RTCAST_ERR_STOPPED);
    EXPECT(rtcast_server_set_event_callback(server, on_event, &events_seen), RTCAST_ERR_STOPPED);
    OK(rtcast_stream_stats(stream, &sstats)); /* counters stay readable */
    CHECK(sstats.video_frames == 32);

    rtcast_stream_free(stream);
    rtcast_stream_free(same);
    rtcast_server_free(server);
    rtcast_stream_free(NULL);
    rtcast_server_free(NULL);
    rtcast_config_free(NULL);
}

int main(void) {
    test_version_and_errors();
    test_config();
    test_start_push_stop();
    /* No viewer connected, so no event can have come. */
    check(events_seen == 0, "no events without viewers", __LINE__);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
