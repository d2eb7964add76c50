#include "daemon_test_support.hpp"

#include "test_support.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace agentlock::daemon::test {

Finding finding(const std::string& event, const std::string& key, const std::string& fingerprint) {
    Finding f;
    f.event = event;
    f.key = key;
    f.fingerprint = fingerprint;
    f.paths = {key};
    return f;
}

NotifySocket::NotifySocket(std::string path) : m_path(std::move(path)) {
    m_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m_fd < 0) {
        throw std::runtime_error(std::string("socket AF_UNIX: ") + std::strerror(errno));
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (m_path.size() >= sizeof addr.sun_path) {
        throw std::runtime_error("socket path too long: " + m_path);
    }
    std::memcpy(addr.sun_path, m_path.c_str(), m_path.size() + 1);
    if (::bind(m_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error("bind " + m_path + ": " + std::strerror(errno));
    }
}

NotifySocket::~NotifySocket() {
    ::close(m_fd);
    ::unlink(m_path.c_str());
}

std::vector<std::string> NotifySocket::messages() {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
        if (n < 0) {
            break; // EAGAIN: nothing more now
        }
        m_received.emplace_back(buf, static_cast<std::size_t>(n));
    }
    return m_received;
}

bool NotifySocket::wait_for(const std::string& needle, std::size_t from,
                            std::chrono::milliseconds timeout) {
    return agentlock::test::wait_until(
        [&] {
            auto all = messages();
            for (std::size_t i = from; i < all.size(); ++i) {
                if (all[i].find(needle) != std::string::npos) {
                    return true;
                }
            }
            return false;
        },
        timeout);
}

std::vector<std::string> KeepingSink::lines() {
    std::lock_guard<std::mutex> guard(m_lines_mutex);
    return m_lines;
}

std::size_t KeepingSink::count(const std::string& needle) {
    std::lock_guard<std::mutex> guard(m_lines_mutex);
    std::size_t n = 0;
    for (const auto& l : m_lines) {
        n += l.find(needle) != std::string::npos ? 1u : 0u;
    }
    return n;
}

void KeepingSink::slow_down(const std::string& needle, std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> guard(m_lines_mutex);
    m_slow_needle = needle;
    m_slow_delay = delay;
}

void KeepingSink::sink_it_(const spdlog::details::log_msg& msg) {
    std::chrono::milliseconds delay{0};
    {
        std::lock_guard<std::mutex> guard(m_lines_mutex);
        m_lines.emplace_back(msg.payload.data(), msg.payload.size());
        if (!m_slow_needle.empty() && m_lines.back().find(m_slow_needle) != std::string::npos) {
            delay = m_slow_delay;
        }
    }
    std::this_thread::sleep_for(delay);
}

} // namespace agentlock::daemon::test
