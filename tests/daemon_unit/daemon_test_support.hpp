#pragma once
// Helpers for agentlockd's unit tests: a datagram socket standing in for systemd's notify socket,
// an spdlog sink that keeps log lines for inspection from another thread, and findings to feed
// a FindingTracker.

#include <agentlock/findings.hpp>

#include <chrono>
#include <mutex>
#include <spdlog/sinks/base_sink.h>
#include <string>
#include <vector>

namespace agentlock::daemon::test {

/// A finding `event` about `key` (also its only path), with `fingerprint` standing for its
/// content: a different fingerprint under the same event and key is a changed finding.
Finding finding(const std::string& event, const std::string& key,
                const std::string& fingerprint = "");

/// A bound AF_UNIX datagram socket; set NOTIFY_SOCKET to path() and read what arrives.
class NotifySocket {
public:
    explicit NotifySocket(std::string path);
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    const std::string& path() const { return m_path; }
    /// Reads every datagram waiting now and returns all received so far.
    std::vector<std::string> messages();
    /// Polls until some message contains `needle` (counting from message `from`).
    bool wait_for(const std::string& needle, std::size_t from = 0,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));

private:
    std::string m_path;
    int m_fd = -1;
    std::vector<std::string> m_received;
};

/// Keeps every formatted log line; safe to read while another thread logs.
class KeepingSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    std::vector<std::string> lines();
    /// Lines containing `needle`.
    std::size_t count(const std::string& needle);
    /// From now on, writing a line that contains `needle` takes `delay` (the logging thread
    /// sleeps), as a slow journal would.
    void slow_down(const std::string& needle, std::chrono::milliseconds delay);

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}

private:
    std::mutex m_lines_mutex;
    std::vector<std::string> m_lines;
    std::string m_slow_needle;
    std::chrono::milliseconds m_slow_delay{0};
};

} // namespace agentlock::daemon::test
