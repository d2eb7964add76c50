#pragma once
// The event sources agentlockd's monitor listens to: a pidfd for each live owner (PidWatcher),
// a pidfd for each process a tmux hold depends on (TmuxPidWatcher), and inotify on the tree
// (DirWatcher). They only report, through the handlers, to the loop; the monitor decides.

#include "dir_watch.hpp"
#include "event_log.hpp"
#include "pid_watch.hpp"
#include "tmux_watch.hpp"
#include <agentlock/monitor.hpp>
#include <agentlock/process_probe.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace agentlock::daemon {

/// Says once that a source left something to polling: the source, why, and the fallback.
using Degrade = std::function<void(const std::string& source, const std::string& reason,
                                   const std::string& fallback)>;

class EventSources {
public:
    struct Handlers {
        PidWatcher::OnExit owner_exited;
        TmuxPidWatcher::OnExit tmux_exited;
        DirWatcher::OnEvents dir_events;
    };

    /// The pidfd budgets come from `nofile`, the open-files limit: an eighth of what pidfds may
    /// take (at most 4,096) for tmux holds, the rest for owners.
    EventSources(boost::asio::io_context& io, std::uint64_t nofile, Handlers handlers);

    /// Opens what the kernel allows (again after close()), telling `degrade` of each source it
    /// cannot use, and hands the sources to `monitor`. `interval` is the polling fallback's.
    void open(Monitor& monitor, std::chrono::milliseconds interval, const Degrade& degrade);
    /// Takes the sources from `monitor`, closes every pidfd and inotify.
    void close(Monitor& monitor);
    /// After a piece of work: tells `degrade` of pidfds that could not be opened.
    void check(const Monitor& monitor, std::chrono::milliseconds interval,
               std::chrono::milliseconds tmux_poll, const Degrade& degrade) const;
    /// The inotify watches, to sync after a pass or a batch; null when inotify is off.
    DirWatcher* dirs(const Monitor& monitor) const {
        return monitor.inotify_on() ? m_dirs.get() : nullptr;
    }
    /// events.started's fields.
    Fields started_fields(const Monitor& monitor) const;

private:
    boost::asio::io_context& m_io;
    Handlers m_handlers;
    std::size_t m_pidfd_budget = 0; ///< for owners
    std::size_t m_tmux_pidfd_budget = 0;
    bool m_pidfd_available = false;
    SystemProcessProbe m_owner_probe;
    std::unique_ptr<PidWatcher> m_pids;
    std::unique_ptr<TmuxPidWatcher> m_tmux_pids;
    std::unique_ptr<DirWatcher> m_dirs;
};

} // namespace agentlock::daemon
