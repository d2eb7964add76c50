#pragma once
// The monitor: the supervisor's policy of what to judge again, and when, between and beside
// full passes. It keeps the table of known locks, the pending re-checks (debounced, retried),
// the owner and tmux re-check schedules and the pass schedule. It takes events as plain calls
// (an owner exited, a directory changed, a pass or a batch of re-checks finished, the time
// came) and answers with work (a pass, or a batch of workers to judge and directories to
// search), with owners to watch (through OwnerWatch) and with the time to wake it next.
//
// It never judges a lock, touches a file or sleeps: the caller runs the work it hands out, one
// piece at a time, with the library's one rule and careful reaper, and reports back. Time comes
// from an injected clock, so that its tests run without sleeping. Not thread-safe: one thread
// (the daemon's event loop) calls it.

#include <agentlock/clock_watch.hpp>
#include <agentlock/lock_table.hpp>
#include <agentlock/pass.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace agentlock {

using MonoClock = std::chrono::steady_clock;
using MonoTime = MonoClock::time_point;

/// The monitor's source of steady time.
class MonitorClock {
public:
    virtual ~MonitorClock() = default;
    virtual MonoTime now() const = 0;
};

/// std::chrono::steady_clock.
class SteadyMonitorClock final : public MonitorClock {
public:
    MonoTime now() const override { return MonoClock::now(); }
};

/// Where owner deaths are watched (pidfds in the daemon; a fake in tests).
class OwnerWatch {
public:
    virtual ~OwnerWatch() = default;
    /// `worker`'s lock is owned by `owner`, alive when judged, or by no live owner (nullopt).
    virtual void set_owner(const std::string& worker, const std::optional<Owner>& owner) = 0;
    /// Every worker `gone` selects has no live owner any more.
    virtual void forget_if(const std::function<bool(const std::string& worker)>& gone) = 0;
    /// Workers whose live owner cannot be watched: the monitor polls them.
    virtual const std::set<std::string>& unwatched() const = 0;
};

/// Where the processes that tmux holds depend on are watched: the pane processes and the tmux
/// servers of the locks held by sessions (pidfds in the daemon; a fake in tests).
class TmuxWatch {
public:
    virtual ~TmuxWatch() = default;
    /// Watches exactly `pids` from now on; the exit of each is reported once (tmux_exited), at
    /// once for one that is gone already.
    virtual void watch(const std::set<std::int64_t>& pids) = 0;
    /// Whether every PID of the last watch() is watched (else tmux must be asked again
    /// periodically to learn that a session ended).
    virtual bool all_watched() const = 0;
};

/// What a watched directory is to the supervisor.
enum class WatchKind {
    dir,     ///< a root, or a directory that may lead to workers: new and removed subdirectories
    runtime, ///< a worker's .runtime: agent.lock created, rewritten, renamed in or removed
};

/// One inotify event about a watched directory, with the directory's path.
struct WatchEvent {
    std::string dir; ///< the watched directory's path
    WatchKind kind = WatchKind::dir;
    std::string name;       ///< the entry concerned; empty for the directory itself
    std::uint32_t mask = 0; ///< inotify's IN_* bits
};

/// The directory watches as the monitor consults them.
class DirWatchSet {
public:
    virtual ~DirWatchSet() = default;
    /// The kind `path` is watched as, if it is.
    virtual std::optional<WatchKind> kind_of(const std::string& path) const = 0;
    /// Stops watching `path` and everything below it (its path is wrong now).
    virtual void remove_under(const std::string& path) = 0;
};

/// How long the monitor waits before acting on what it hears.
struct MonitorTimings {
    /// How often tmux is asked while some lock is held by a session whose processes cannot all
    /// be watched (no TmuxWatch, a PID it could not watch, a hold without PIDs): short enough
    /// that a session's end reaches its locks within 1 s (p99) under load. While everything is
    /// watched, tmux is asked on an exit, and otherwise only every MonitorSettings::interval (a
    /// kill-session whose pane process ignores SIGHUP ends no watched process).
    std::chrono::milliseconds tmux_poll{300};
    /// After a watched process exited, tmux may not have reaped it yet and still lists its pane
    /// alive, or still answer as a server that is exiting: it is asked again after this delay,
    /// doubled each time, tmux_retries times at most.
    std::chrono::milliseconds tmux_retry{5};
    unsigned tmux_retries = 7;
    /// ... and after tmux's state was unknown, so that a hanging tmux does not hog the worker.
    std::chrono::milliseconds tmux_backoff{5000};
    /// Lock-change events for one worker within this delay lead to one re-check.
    std::chrono::milliseconds debounce{20};
    /// A created agent.lock (not yet closed after writing) is judged after this delay, unless
    /// the writer's close or rename comes first: a half-written lock is judged invalid, never
    /// removed, but the finding would be noise.
    std::chrono::milliseconds create_debounce{200};
};

/// What the monitor is configured with.
struct MonitorSettings {
    std::vector<std::string> roots;
    WalkOptions scope; ///< prune, max_depth, one_file_system, as a pass uses them
    /// Between re-checks of owners that cannot be watched, and of locks left because they
    /// changed while being removed; between passes when events are off.
    std::chrono::milliseconds interval{std::chrono::seconds(30)};
    /// Between full passes while events (inotify) work.
    std::chrono::milliseconds events_pass_period{std::chrono::minutes(5)};
    /// Between full passes without inotify.
    std::chrono::milliseconds polling_pass_period{std::chrono::seconds(30)};
    MonitorTimings timings;
};

/// A waiting lock a fresh tmux answer may release. `replaced`: another server answers than the
/// one the locks were judged against (its socket's server was restarted, and a new server hands
/// out the same %N and $N again), so every one of them is judged again.
std::vector<std::string> workers_to_recheck(const std::vector<SessionWait>& waits,
                                            const TmuxFacts& fresh, bool replaced = false);

/// One re-check as run and its trigger ("pidfd", "inotify", "tmux", "poll").
struct CheckOutcome {
    WorkerCheck check;
    std::string trigger;
};

/// Re-checks to run together, on the worker thread, between passes.
struct RecheckBatch {
    std::map<std::string, std::string> checks; ///< worker -> trigger
    std::vector<std::string> scans;            ///< new directories to search for workers
    std::vector<SessionWait> session_waits;    ///< when set, ask tmux and judge those it frees
    unsigned deepest_worker = 0; ///< for scans: the deepest known worker below its root
};

/// A piece of work the monitor hands out.
struct MonitorWork {
    enum class Kind { pass, recheck };
    Kind kind = Kind::pass;
    RecheckBatch batch; ///< for a recheck
};

/// How a request for a full pass was taken.
enum class PassWhen {
    now,           ///< it starts now
    after_current, ///< it follows the work that is running
    merged,        ///< one was already asked for: the same pass serves both
};
std::string_view to_string(PassWhen when); ///< "now", "after-current", "merged"

/// What a finished pass or batch changed that the caller reports.
struct MonitorNews {
    bool inotify_exhausted = false; ///< the watch limit was hit: inotify is given up on now
};

/// The policy. See the top of this file.
class Monitor {
public:
    Monitor(const MonitorClock& clock, MonitorSettings settings);

    /// Replaces the settings (a reloaded config).
    void reconfigure(MonitorSettings settings);
    /// Events on: owners go to `owners`, directory events are read against `dirs` (null when
    /// inotify is unavailable; then full passes come every polling period), the processes tmux
    /// holds depend on to `tmux` (null: tmux is asked every tmux_poll while a lock waits on
    /// it). Off (`owners` null): everything pending is dropped and only full passes remain.
    void set_events(OwnerWatch* owners, DirWatchSet* dirs, TmuxWatch* tmux = nullptr);
    bool events_on() const { return m_owners != nullptr; }
    bool inotify_on() const { return m_dirs != nullptr && !m_inotify_exhausted; }

    /// A full pass is wanted (a signal, a reload).
    PassWhen request_pass();
    /// The owner of these workers exited: judge them now.
    void owner_exited(const std::set<std::string>& workers);
    /// A process some tmux hold depends on exited (a pane's, or a tmux server): ask tmux now.
    void tmux_exited(std::int64_t pid);
    /// Directory events as inotify read them; `overflow` when the kernel's queue lost some.
    void dir_events(const std::vector<WatchEvent>& events, bool overflow);
    /// The wall clock was stepped: every lock written before it is no longer judged reused by
    /// its start time alone (see ClockFacts), for as long as the monitor runs.
    void clock_stepped(const ClockStep& step) { m_clock_facts.record(step); }
    /// The steps seen so far, for the work to judge with.
    const ClockFacts& clock_facts() const { return m_clock_facts; }
    /// The owner last judged alive for `worker`'s lock, with the start ticks the probe saw then:
    /// after a clock step, a PID with the same ticks is still that owner. The table does not
    /// change while a piece of work runs, so the work may ask this from its own thread.
    std::optional<KnownOwner> known_owner(std::string_view worker) const;
    /// Stopping: no work is handed out any more.
    void stop() { m_stopping = true; }
    bool stopping() const { return m_stopping; }

    /// The work due now, if nothing runs: a pass first, else a batch of re-checks. The caller
    /// runs it and calls pass_done or batch_done.
    std::optional<MonitorWork> next_work();
    /// When next_work may next have something, if ever (nothing runs and nothing is due now).
    std::optional<MonoTime> next_wake() const;

    /// The pass handed out ended (`report` null when it failed). Takes its summaries.
    MonitorNews pass_done(PassReport* report, bool watch_exhausted);
    /// The re-checks handed out ended; `tmux` is the tmux answer when tmux was asked (the
    /// first unknown one of `answers`, else the first), `answers` each server's.
    MonitorNews batch_done(const std::vector<CheckOutcome>& checks,
                           const std::optional<TmuxFacts>& tmux, bool watch_exhausted,
                           const std::vector<TmuxServerReport>& answers = {});

    bool busy() const { return m_running != Running::nothing; }
    bool pass_running() const { return m_running == Running::pass; }
    /// Time between the starts of two full passes, as things stand.
    std::chrono::milliseconds pass_period() const;
    /// Full passes the monitor asked for by itself (an overflow, a removed root): why, and how
    /// each request was taken, for the caller's log.
    std::vector<std::pair<std::string, PassWhen>> take_pass_requests() {
        return std::exchange(m_pass_requests, {});
    }
    /// The known locks.
    const LockTable& table() const { return m_table; }

private:
    enum class Running { nothing, pass, recheck };

    void request_check(const std::string& worker, const char* trigger,
                       std::chrono::milliseconds delay);
    void request_scan(const std::string& path);
    void want_pass(std::string reason);
    void update_owner(const std::string& worker);
    void arm_polls();
    void dir_event(const WatchEvent& ev);
    /// Whether tmux's answers tell of every hold's end through a watched exit.
    bool tmux_watched() const;
    void update_tmux_watch();
    /// Fresh answers: a process that exited but is still listed is asked about again soon.
    void retry_tmux_exits(const std::vector<TmuxServerReport>& answers);

    const MonitorClock& m_clock;
    MonitorSettings m_settings;
    OwnerWatch* m_owners = nullptr;
    DirWatchSet* m_dirs = nullptr;
    TmuxWatch* m_tmux_watch = nullptr;
    /// Watched processes that exited and that tmux still listed when last asked: the times it
    /// was asked again since.
    std::map<std::int64_t, unsigned> m_tmux_exits;
    LockTable m_table;

    Running m_running = Running::nothing;
    bool m_stopping = false;
    bool m_pass_wanted = true;        ///< the first pass starts at once
    bool m_tmux_unknown = false;      ///< the last tmux re-poll could not reach tmux
    bool m_inotify_exhausted = false; ///< the watch limit was hit: new directories go unwatched
    std::optional<MonoTime> m_pass_started;
    std::optional<MonoTime> m_tmux_poll_at;
    std::optional<MonoTime> m_owner_poll_at;
    struct Pending {
        MonoTime due;
        const char* trigger;
    };
    std::map<std::string, Pending> m_checks;
    std::map<std::string, MonoTime> m_scans;
    std::vector<std::pair<std::string, PassWhen>> m_pass_requests;
    ClockFacts m_clock_facts;
};

} // namespace agentlock
