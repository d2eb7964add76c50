#include "clock_steps.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace agentlock::daemon {

ClockStepWatcher::ClockStepWatcher(boost::asio::io_context& io, OnStep on_step, OnLost on_lost)
    : m_io(io), m_on_step(std::move(on_step)), m_on_lost(std::move(on_lost)) {}

ClockStepWatcher::~ClockStepWatcher() {
    close();
}

Status ClockStepWatcher::start() {
    Result<ClockWatch> opened = ClockWatch::open();
    if (!opened) {
        return opened.error();
    }
    m_watch.emplace(std::move(*opened));
    // Asio closes what it holds: it gets its own descriptor of the same timerfd.
    const int fd = ::fcntl(m_watch->fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        Error e = io_error("dup", "the clock timerfd", errno);
        m_watch.reset();
        return e;
    }
    m_fd = std::make_unique<boost::asio::posix::stream_descriptor>(m_io, fd);
    wait();
    return {};
}

void ClockStepWatcher::wait() {
    m_fd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [this](const boost::system::error_code& ec) {
                         if (ec || !m_watch) {
                             return; // closed
                         }
                         poll();
                         if (m_watch) {
                             wait();
                         }
                     });
}

void ClockStepWatcher::poll() {
    if (!m_watch) {
        return;
    }
    Result<std::optional<ClockStep>> step = m_watch->check();
    if (!step) {
        lost(step.error().message);
        return;
    }
    if (*step) {
        m_on_step(**step);
    }
}

void ClockStepWatcher::lost(const std::string& why) {
    close();
    m_on_lost(why);
}

void ClockStepWatcher::close() {
    if (m_fd) {
        boost::system::error_code ec;
        m_fd->cancel(ec);
        m_fd->close(ec);
        m_fd.reset();
    }
    m_watch.reset();
}

} // namespace agentlock::daemon
