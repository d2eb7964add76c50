#pragma once
// systemd's notification protocol through libsystemd (honours NOTIFY_SOCKET).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace agentlock::daemon {

/// Sends state changes to the service manager. Every call is a no-op when NOTIFY_SOCKET is unset.
class Notifier {
public:
    /// "READY=1" with a STATUS= line.
    bool ready(std::string_view status);
    /// "STATUS=<one line>".
    bool status(std::string_view status);
    /// "RELOADING=1" with MONOTONIC_USEC=<CLOCK_MONOTONIC now>.
    bool reloading();
    /// "STOPPING=1".
    bool stopping();
    /// "WATCHDOG=1".
    bool watchdog();

    /// Why the last send failed ("sd_notify: Connection refused"), empty when it did not.
    const std::string& last_error() const { return m_last_error; }

    /// The interval at which WATCHDOG=1 must be sent, when systemd asked this process for it.
    static std::optional<std::chrono::microseconds> watchdog_timeout();

private:
    bool send(const std::string& message);

    std::string m_last_error;
};

/// Makes text fit one STATUS= line: newlines and other control characters become spaces.
std::string one_line(std::string_view text);

} // namespace agentlock::daemon
