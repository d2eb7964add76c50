// Uses the installed agentlock library: the lock format and the Lock API on a worker directory
// given on the command line. Exits 0 when every step behaves as documented.
#include <agentlock/lock.hpp>
#include <agentlock/lock_file.hpp>

#include <cstdio>
#include <string>
#include <unistd.h>

namespace {

int fail(const std::string& what) {
    std::fprintf(stderr, "consumer: %s\n", what.c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        return fail("usage: consumer WORKER_DIR");
    }
    const std::string text = "2026-11-27T05:15:43.123456789Z";
    auto t = agentlock::parse_rfc3339(text);
    if (!t || agentlock::format_rfc3339(*t) != text) {
        return fail("parse_rfc3339/format_rfc3339 do not round-trip " + text);
    }

    agentlock::Lock lock(argv[1]);
    if (lock.status() != "unlocked") {
        return fail("fresh worker: status is '" + lock.status() + "'");
    }
    if (auto s = lock.acquire("consumer-session"); !s.ok()) {
        return fail("acquire: " + s.error().message);
    }
    auto info = lock.read();
    if (!info.ok() || info.value().pid != getpid()) {
        return fail("read after acquire does not name our PID");
    }
    std::printf("%s: %s\n", lock.lock_path().c_str(), lock.status().c_str());
    if (auto s = lock.release(); !s.ok()) {
        return fail("release: " + s.error().message);
    }
    if (lock.status() != "unlocked") {
        return fail("after release: status is '" + lock.status() + "'");
    }
    std::printf("consumer: ok\n");
    return 0;
}
