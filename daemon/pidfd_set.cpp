#include "pidfd_set.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace agentlock::daemon {

int open_pidfd(std::int64_t pid) {
    if (pid <= 0 || pid > INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    return static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0U));
}

PidfdSet::PidfdSet(boost::asio::io_context& io, OnReady on_ready)
    : m_on_ready(std::move(on_ready)) {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        m_error = std::string("epoll_create1: ") + std::strerror(errno);
        return;
    }
    m_epoll = std::make_unique<boost::asio::posix::stream_descriptor>(io, ep);
}

PidfdSet::~PidfdSet() {
    clear();
    if (m_epoll) {
        boost::system::error_code ec;
        m_epoll->close(ec);
    }
}

Status PidfdSet::add(std::int64_t pid) {
    const std::string what = "PID " + std::to_string(pid);
    if (!m_epoll) {
        return Error{ErrorKind::io, {}, what, m_error};
    }
    Fd fd(open_pidfd(pid));
    if (!fd) {
        return io_error("pidfd_open", what, errno);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(pid);
    if (::epoll_ctl(m_epoll->native_handle(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
        return io_error("epoll_ctl", what, errno);
    }
    m_fds.insert_or_assign(pid, std::move(fd)); // closing an older one takes it out of the set
    wait();
    return {};
}

void PidfdSet::remove(std::int64_t pid) {
    m_fds.erase(pid); // closing it takes it out of the epoll set
}

void PidfdSet::clear() {
    m_fds.clear();
    if (m_epoll) {
        boost::system::error_code ec;
        m_epoll->cancel(ec); // nothing left to wait for
    }
    m_waiting = false;
}

void PidfdSet::wait() {
    if (m_waiting || !m_epoll) {
        return;
    }
    m_waiting = true;
    m_epoll->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                            if (ec == boost::asio::error::operation_aborted) {
                                return; // cancelled: this set may be gone already
                            }
                            m_waiting = false;
                            on_ready();
                            if (!m_fds.empty()) {
                                wait();
                            }
                        });
}

void PidfdSet::on_ready() {
    std::array<epoll_event, 256> ready{};
    std::vector<std::pair<std::int64_t, bool>> exited;
    int n = 0;
    do {
        n = ::epoll_wait(m_epoll->native_handle(), ready.data(), static_cast<int>(ready.size()), 0);
        for (int i = 0; i < n; ++i) {
            const auto pid = static_cast<std::int64_t>(ready[static_cast<std::size_t>(i)].data.u64);
            auto it = m_fds.find(pid);
            if (it == m_fds.end()) {
                continue; // closed meanwhile
            }
            // An event of a pidfd closed earlier may name a PID watched afresh since: believe
            // only the pidfd open now.
            pollfd p{it->second.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) != 1 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            m_fds.erase(it);
            exited.emplace_back(pid, (p.revents & POLLERR) != 0);
        }
    } while (n == static_cast<int>(ready.size()));
    for (const auto& [pid, failed] : exited) {
        m_on_ready(pid, failed); // after the drain: it may add and remove PIDs
    }
}

} // namespace agentlock::daemon
