// h264_file: serve an H.264 elementary stream file to browsers, from C++.
//
//   h264_file FILE [FPS] [PORT] [BIND] [--wait-viewer] [--loop]
//       (defaults: 30, 8080, 0.0.0.0)
//
// Reads FILE (H.264 Annex B: start codes, constrained baseline or main, no B-frames), splits it
// into access units, and pushes them at FPS with timestamps through rtcast's C API, printing the
// player URL and every viewer event. --wait-viewer waits for the first viewer before pushing (so
// that it sees the file from its first frame); --loop plays the file again and again.
//
// Build: c++ -std=c++17 h264_file.cpp $(pkg-config --cflags --libs rtcast) -o h264_file
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rtcast.h"

namespace {

// Throws with rtcast's message when a call does not return RTCAST_OK.
void must(rtcast_result r, const char *what) {
    if (r == RTCAST_OK) {
        return;
    }
    char msg[512];
    size_t len = 0;
    if (rtcast_last_error_message(msg, sizeof msg, &len) != RTCAST_OK) {
        std::strcpy(msg, "(message too long)");
    }
    throw std::runtime_error(std::string(what) + " failed: " + rtcast_result_name(r) + ": " + msg);
}

// Owns an rtcast handle: frees it exactly once.
template <typename T, void (*Free)(T *)> struct Handle {
    T *ptr = nullptr;
    Handle() = default;
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    ~Handle() { Free(ptr); }
};
using Config = Handle<rtcast_config, rtcast_config_free>;
using Server = Handle<rtcast_server, rtcast_server_free>;
using Stream = Handle<rtcast_stream, rtcast_stream_free>;

// The NAL units of an Annex B byte stream: [begin, end) of each, start codes excluded.
struct Nal {
    size_t begin;
    size_t end;
};

std::vector<Nal> split_nals(const std::vector<uint8_t> &data) {
    std::vector<Nal> nals;
    size_t i = 0, n = data.size();
    size_t start = SIZE_MAX;  // first byte of the current NAL unit
    while (i + 3 <= n) {
        if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) {
            if (start != SIZE_MAX) {
                size_t end = i;
                // A 4-byte start code (and trailing zeros) belongs to the next unit.
                while (end > start && data[end - 1] == 0) {
                    end--;
                }
                nals.push_back({start, end});
            }
            i += 3;
            start = i;
        } else {
            i++;
        }
    }
    if (start != SIZE_MAX && start < n) {
        nals.push_back({start, n});
    }
    return nals;
}

// Splits an Annex B stream into access units (H.264 7.4.1.2.3): a new access unit starts at an
// access unit delimiter, SEI, SPS, PPS or NAL types 14-18 that follows a slice, and at a slice
// whose first_mb_in_slice is 0 (the first slice of a picture) that follows a slice. Each access
// unit is returned with 4-byte start codes.
std::vector<std::vector<uint8_t>> split_access_units(const std::vector<uint8_t> &data) {
    std::vector<std::vector<uint8_t>> units;
    std::vector<uint8_t> current;
    bool has_slice = false;
    for (const Nal &nal : split_nals(data)) {
        if (nal.end <= nal.begin) {
            continue;
        }
        int type = data[nal.begin] & 0x1f;
        bool slice = type == 1 || type == 5;
        bool starts_unit = type == 6 || type == 7 || type == 8 || type == 9 ||
                           (type >= 14 && type <= 18);
        // first_mb_in_slice is ue(v): it is 0 exactly when its first bit is 1.
        bool first_slice = slice && nal.end - nal.begin > 1 && (data[nal.begin + 1] & 0x80);
        if (has_slice && (starts_unit || first_slice)) {
            units.push_back(std::move(current));
            current.clear();
            has_slice = false;
        }
        static const uint8_t start_code[4] = {0, 0, 0, 1};
        current.insert(current.end(), start_code, start_code + 4);
        current.insert(current.end(), data.begin() + static_cast<std::ptrdiff_t>(nal.begin),
                       data.begin() + static_cast<std::ptrdiff_t>(nal.end));
        has_slice = has_slice || slice;
    }
    if (has_slice) {
        units.push_back(std::move(current));
    }
    return units;
}

// Shared between main and rtcast's event thread.
struct Viewers {
    std::mutex mutex;
    std::condition_variable joined_cv;
    bool joined = false;
};

// Runs on rtcast's event thread, one event at a time; must not throw.
void on_event(const rtcast_event *e, void *userdata) noexcept {
    auto *viewers = static_cast<Viewers *>(userdata);
    switch (e->kind) {
    case RTCAST_EVENT_VIEWER_JOINED: {
        std::printf("viewer %llu joined %s from %s\n", static_cast<unsigned long long>(e->viewer),
                    e->stream, e->remote);
        std::lock_guard<std::mutex> lock(viewers->mutex);
        viewers->joined = true;
        viewers->joined_cv.notify_all();
        break;
    }
    case RTCAST_EVENT_VIEWER_LEFT:
        std::printf("viewer %llu left %s\n", static_cast<unsigned long long>(e->viewer), e->stream);
        break;
    case RTCAST_EVENT_KEYFRAME_REQUESTED:
        // A file cannot make a keyframe on demand; the next one in the file will do.
        std::printf("keyframe requested on %s (%s)\n", e->stream, e->rendition);
        break;
    case RTCAST_EVENT_BITRATE_HINT:
        std::printf("bitrate hint for %s: %llu bit/s\n", e->stream,
                    static_cast<unsigned long long>(e->bps));
        break;
    case RTCAST_EVENT_RENDITION_SWITCHED:
        std::printf("viewer %llu of %s switched from %s to %s at %llu bit/s\n",
                    static_cast<unsigned long long>(e->viewer), e->stream, e->from, e->to,
                    static_cast<unsigned long long>(e->estimate_bps));
        break;
    }
    std::fflush(stdout);
}

int run(int argc, char **argv) {
    std::vector<std::string> args;
    bool wait_viewer = false, loop = false;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if (arg == "--wait-viewer") {
            wait_viewer = true;
        } else if (arg == "--loop") {
            loop = true;
        } else {
            args.push_back(arg);
        }
    }
    if (args.empty() || args.size() > 4) {
        std::fprintf(stderr, "usage: %s FILE [FPS] [PORT] [BIND] [--wait-viewer] [--loop]\n",
                     argv[0]);
        return 2;
    }
    int fps = args.size() > 1 ? std::atoi(args[1].c_str()) : 30;
    int port = args.size() > 2 ? std::atoi(args[2].c_str()) : 8080;
    std::string bind = args.size() > 3 ? args[3] : "0.0.0.0";
    if (fps <= 0 || fps > 1000 || port < 0 || port > 65535) {
        std::fprintf(stderr, "h264_file: FPS must be 1-1000 and PORT 0-65535\n");
        return 2;
    }

    std::ifstream file(args[0], std::ios::binary);
    if (!file) {
        std::fprintf(stderr, "h264_file: cannot open %s\n", args[0].c_str());
        return 1;
    }
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(file)),
                              std::istreambuf_iterator<char>());
    std::vector<std::vector<uint8_t>> units = split_access_units(data);
    if (units.empty()) {
        std::fprintf(stderr, "h264_file: no H.264 slices in %s\n", args[0].c_str());
        return 1;
    }
    std::printf("%s: %zu access units\n", args[0].c_str(), units.size());

    Config config;
    must(rtcast_config_new(&config.ptr), "rtcast_config_new");
    must(rtcast_config_set_bind(config.ptr, bind.c_str()), "rtcast_config_set_bind");
    must(rtcast_config_set_port(config.ptr, static_cast<uint16_t>(port)), "rtcast_config_set_port");
    // Declared before the server, so that it outlives it: freeing the server stops it, and no
    // callback runs after that.
    Viewers viewers;
    Server server;
    must(rtcast_server_start(config.ptr, &server.ptr), "rtcast_server_start");
    must(rtcast_server_set_event_callback(server.ptr, on_event, &viewers), "set_event_callback");

    Stream stream;
    must(rtcast_server_stream(server.ptr, "file", &stream.ptr), "rtcast_server_stream");
    char url[256];
    size_t len = 0;
    must(rtcast_server_url(server.ptr, "file", url, sizeof url, &len), "rtcast_server_url");
    std::printf("rtcast %s: watch at %s\n", rtcast_version(), url);
    must(rtcast_server_ws_url(server.ptr, "file", url, sizeof url, &len), "rtcast_server_ws_url");
    std::printf("players connect to %s\n", url);
    std::fflush(stdout);

    if (wait_viewer) {
        std::unique_lock<std::mutex> lock(viewers.mutex);
        viewers.joined_cv.wait(lock, [&] { return viewers.joined; });
    }

    using clock = std::chrono::steady_clock;
    const auto period = std::chrono::microseconds(1000000 / fps);
    auto next = clock::now();
    int64_t frame = 0;
    do {
        for (const auto &unit : units) {
            int64_t pts_us = frame * 1000000 / fps;
            must(rtcast_stream_push_h264(stream.ptr, unit.data(), unit.size(), pts_us),
                 "rtcast_stream_push_h264");
            frame++;
            next += period;
            std::this_thread::sleep_until(next);
        }
    } while (loop);

    // After stop returns no callback runs: main owns stdout alone.
    must(rtcast_server_stop(server.ptr), "rtcast_server_stop");
    std::printf("pushed %lld access units; stopped\n", static_cast<long long>(frame));
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "h264_file: %s\n", e.what());
        return 1;
    }
}
