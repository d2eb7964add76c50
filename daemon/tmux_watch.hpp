#pragma once
// tmux events: a pidfd for each process the locks held by tmux sessions depend on (their
// panes' processes and their tmux servers), so that tmux is asked again when one of them exits
// rather than on a timer. An exit only says "ask tmux now"; tmux's answer and the library's rule
// decide.

#include "pidfd_set.hpp"
#include <agentlock/monitor.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

namespace agentlock::daemon {

/// The TmuxWatch of the daemon. Lives on the event loop thread.
class TmuxPidWatcher final : public TmuxWatch {
public:
    /// Called (posted to the loop) with a PID that exited, or that was gone when it was to be
    /// watched.
    using OnExit = std::function<void(std::int64_t pid)>;

    /// At most `budget` pidfds are held; with `enabled` false none is opened.
    TmuxPidWatcher(boost::asio::io_context& io, std::size_t budget, OnExit on_exit,
                   bool enabled = true);

    void watch(const std::set<std::int64_t>& pids) override;
    bool all_watched() const override { return m_unwatched.empty(); }

    /// PIDs with an open pidfd.
    std::size_t open_count() const { return m_set.size(); }
    /// Why the last PID went unwatched (for the log), empty if none did.
    const std::string& unwatched_reason() const { return m_unwatched_reason; }
    /// Closes every pidfd and forgets every PID.
    void clear();
    /// Turns pidfds on or off (off: every PID is left unwatched, and tmux polled).
    void set_enabled(bool enabled);

private:
    void report(std::int64_t pid);

    boost::asio::io_context& m_io;
    std::size_t m_budget;
    OnExit m_on_exit;
    bool m_enabled;
    std::set<std::int64_t> m_pids;      ///< the last watch(): open, fired or unwatched
    std::set<std::int64_t> m_unwatched; ///< of those, the ones without a pidfd for want of one
    std::string m_unwatched_reason;
    PidfdSet m_set;
};

} // namespace agentlock::daemon
