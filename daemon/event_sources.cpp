#include "event_sources.hpp"

#include <agentlock/duration.hpp>

#include <algorithm>

namespace agentlock::daemon {

EventSources::EventSources(boost::asio::io_context& io, std::uint64_t nofile, Handlers handlers)
    : m_io(io), m_handlers(std::move(handlers)) {
    const std::size_t budget = pidfd_budget(nofile);
    m_tmux_pidfd_budget = std::min<std::size_t>(4096, budget / 8);
    m_pidfd_budget = budget - m_tmux_pidfd_budget;
}

void EventSources::open(Monitor& monitor, std::chrono::milliseconds interval,
                        const Degrade& degrade) {
    const std::string pidfd_problem = pidfd_unavailable();
    m_pidfd_available = pidfd_problem.empty();
    if (!m_pids) {
        m_pids = std::make_unique<PidWatcher>(m_io, m_pidfd_budget, m_owner_probe,
                                              m_handlers.owner_exited, m_pidfd_available);
        m_tmux_pids = std::make_unique<TmuxPidWatcher>(m_io, m_tmux_pidfd_budget,
                                                       m_handlers.tmux_exited, m_pidfd_available);
    } else {
        m_pids->set_enabled(m_pidfd_available);
        m_tmux_pids->set_enabled(m_pidfd_available);
    }
    if (!m_pidfd_available) {
        degrade("pidfd", pidfd_problem,
                "live owners re-checked every " + format_duration(interval));
    }
    if (!m_dirs) {
        m_dirs = std::make_unique<DirWatcher>(m_io);
    }
    if (m_dirs->is_open()) {
        // Already open: its events are being read.
    } else if (Status opened = m_dirs->open(); !opened) {
        degrade("inotify", opened.error().message,
                "a full pass every " + format_duration(interval));
    } else {
        m_dirs->start(m_handlers.dir_events);
    }
    monitor.set_events(m_pids.get(), m_dirs->is_open() ? m_dirs.get() : nullptr, m_tmux_pids.get());
}

void EventSources::close(Monitor& monitor) {
    monitor.set_events(nullptr, nullptr);
    if (m_pids) {
        m_pids->clear();
        m_tmux_pids->clear();
    }
    if (m_dirs) {
        m_dirs->close();
    }
}

void EventSources::check(const Monitor& monitor, std::chrono::milliseconds interval,
                         std::chrono::milliseconds tmux_poll, const Degrade& degrade) const {
    if (!m_pidfd_available || !m_pids || !monitor.events_on()) {
        return;
    }
    if (!m_pids->unwatched().empty()) {
        degrade("pidfd", m_pids->unwatched_reason(),
                "owners without a pidfd re-checked every " + format_duration(interval));
    }
    if (!m_tmux_pids->all_watched()) {
        degrade("tmux-pidfd", m_tmux_pids->unwatched_reason(),
                "tmux asked every " + format_duration(tmux_poll) +
                    " while a lock is held by a session");
    }
}

Fields EventSources::started_fields(const Monitor& monitor) const {
    return {{"pidfd", m_pidfd_available ? "on" : "off"},
            {"inotify", monitor.inotify_on() ? "on" : "off"},
            {"pidfds", std::to_string(m_pids->open_count())},
            {"tmux_pidfds", std::to_string(m_tmux_pids->open_count())},
            {"pidfd_budget", std::to_string(m_pidfd_budget)},
            {"watches", std::to_string(m_dirs->count())},
            {"polled_owners", std::to_string(m_pids->unwatched().size())},
            {"full_pass_every", format_duration(monitor.pass_period())}};
}

} // namespace agentlock::daemon
