#include "notify.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <systemd/sd-daemon.h>

namespace agentlock::daemon {

std::string one_line(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            c = ' ';
        }
    }
    return out;
}

bool Notifier::send(const std::string& message) {
    const int r = sd_notify(0, message.c_str());
    if (r < 0) {
        m_last_error = std::string("sd_notify: ") + std::strerror(-r);
        return false;
    }
    m_last_error.clear();
    return true;
}

bool Notifier::ready(std::string_view status) {
    return send("READY=1\nSTATUS=" + one_line(status));
}

bool Notifier::status(std::string_view status) {
    return send("STATUS=" + one_line(status));
}

bool Notifier::reloading() {
    timespec ts{};
    if (::clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        const int saved = errno;
        m_last_error = std::string("clock_gettime CLOCK_MONOTONIC: ") + std::strerror(saved);
        return send("RELOADING=1");
    }
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool Notifier::stopping() {
    return send("STOPPING=1");
}

bool Notifier::watchdog() {
    return send("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> Notifier::watchdog_timeout() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        return std::chrono::microseconds(static_cast<std::int64_t>(usec));
    }
    return std::nullopt;
}

} // namespace agentlock::daemon
