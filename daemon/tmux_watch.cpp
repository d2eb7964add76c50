#include "tmux_watch.hpp"

#include <boost/asio/post.hpp>

namespace agentlock::daemon {

TmuxPidWatcher::TmuxPidWatcher(boost::asio::io_context& io, std::size_t budget, OnExit on_exit,
                               bool enabled)
    : m_io(io), m_budget(budget), m_on_exit(std::move(on_exit)), m_enabled(enabled),
      m_set(io, [this](std::int64_t pid, bool) { report(pid); }) {}

void TmuxPidWatcher::watch(const std::set<std::int64_t>& pids) {
    for (auto it = m_pids.begin(); it != m_pids.end();) {
        if (pids.count(*it) == 0) {
            m_set.remove(*it);
            m_unwatched.erase(*it);
            it = m_pids.erase(it);
        } else {
            ++it;
        }
    }
    for (const std::int64_t pid : pids) {
        if (!m_pids.insert(pid).second) {
            continue; // watched, fired or unwatched already: an exit is reported once
        }
        if (!m_enabled) {
            m_unwatched.insert(pid);
            m_unwatched_reason = "pidfd not in use";
        } else if (m_set.size() >= m_budget) {
            m_unwatched.insert(pid);
            m_unwatched_reason = "tmux pidfd budget of " + std::to_string(m_budget) + " reached";
        } else if (Status added = m_set.add(pid); !added) {
            if (added.error().code == std::errc::no_such_process) {
                report(pid); // exited since tmux listed it
            } else {
                m_unwatched.insert(pid);
                m_unwatched_reason = added.error().message;
            }
        }
    }
}

void TmuxPidWatcher::clear() {
    m_set.clear();
    m_pids.clear();
    m_unwatched.clear();
}

void TmuxPidWatcher::set_enabled(bool enabled) {
    if (enabled != m_enabled) {
        clear();
        m_enabled = enabled;
    }
}

void TmuxPidWatcher::report(std::int64_t pid) {
    // Posted, so that the monitor never re-enters watch() from its own call.
    boost::asio::post(m_io, [this, pid]() { m_on_exit(pid); });
}

} // namespace agentlock::daemon
