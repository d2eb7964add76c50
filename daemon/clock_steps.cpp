#include "clock_steps.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace agentlock::daemon {

ClockStepWatcher::ClockStepWatcher(boost::asio::io_context& io, EventLog& log, OnStep on_step)
    : m_io(io), m_log(log), m_on_step(std::move(on_step)) {}

ClockStepWatcher::~ClockStepWatcher() {
    close();
}

void ClockStepWatcher::start() {
    Result<ClockWatch> opened = ClockWatch::open();
    if (!opened) {
        lost(opened.error().message);
        return;
    }
    m_watch.emplace(std::move(*opened));
    // Asio closes what it holds: it gets its own descriptor of the same timerfd.
    const int fd = ::fcntl(m_watch->fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        lost(io_error("fcntl F_DUPFD_CLOEXEC", "the clock timerfd", errno).message);
        return;
    }
    m_fd = std::make_unique<boost::asio::posix::stream_descriptor>(m_io, fd);
    wait();
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
        const auto size = std::chrono::duration_cast<std::chrono::milliseconds>((*step)->size);
        m_log.log(LogLevel::warn, "clock.stepped",
                  {{"size_ms", std::to_string(size.count())},
                   {"at", format_rfc3339((*step)->at)},
                   {"consequence", "locks written before it are not judged reused by start time"}});
        m_on_step(**step);
    }
}

void ClockStepWatcher::lost(const std::string& why) {
    close();
    m_log.log(LogLevel::warn, "clock.unwatched",
              {{"error", why},
               {"consequence", "wall-clock steps go unseen: the start-time rule stands alone"}});
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
