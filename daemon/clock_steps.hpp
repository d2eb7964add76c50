#pragma once
// Wall-clock steps while agentlockd runs: the library's ClockWatch (a timerfd cancelled when
// CLOCK_REALTIME is set), waited on by the event loop. A step is only reported; what it changes
// (a lock written before it is no longer judged reused by its start time alone) is the judge's.

#include "event_log.hpp"

#include <agentlock/clock_watch.hpp>
#include <agentlock/result.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace agentlock::daemon {

/// Sees the wall clock's steps, logs each (clock.stepped) and hands it to a callback on the loop
/// thread. When steps cannot be seen, it says so once (clock.unwatched): they are then unknown,
/// and the start-time rule stands alone.
class ClockStepWatcher {
public:
    using OnStep = std::function<void(const ClockStep& step)>;

    ClockStepWatcher(boost::asio::io_context& io, EventLog& log, OnStep on_step);
    ~ClockStepWatcher();
    ClockStepWatcher(const ClockStepWatcher&) = delete;
    ClockStepWatcher& operator=(const ClockStepWatcher&) = delete;

    /// Creates the timerfd and starts waiting on it.
    void start();
    /// Checks now, without waiting for the loop to read the fd: called right before judging, so
    /// that a step the loop has not read yet is still seen.
    void poll();
    /// Stops waiting and closes the timerfd.
    void close();

private:
    void wait();
    void lost(const std::string& why);

    boost::asio::io_context& m_io;
    EventLog& m_log;
    OnStep m_on_step;
    std::optional<ClockWatch> m_watch;
    std::unique_ptr<boost::asio::posix::stream_descriptor> m_fd; ///< a dup of m_watch's fd
};

} // namespace agentlock::daemon
