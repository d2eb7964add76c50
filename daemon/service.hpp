#pragma once
// The long-running daemon: one Asio event loop with a pass timer, signals, the watchdog and the
// event sources (a pidfd per live owner, inotify on the lock directories, a tmux re-poll while a
// lock is held by a session), and one worker thread that runs every judgement, full passes and
// event-driven re-checks alike, one at a time, so that no two removals ever race inside the
// daemon and the loop stays responsive. The loop only dispatches and logs.

#include "dir_watch.hpp"
#include "event_log.hpp"
#include "lock_table.hpp"
#include "notify.hpp"
#include "pass_log.hpp"
#include "pid_watch.hpp"
#include <agentlock/config.hpp>

#include <agentlock/pass.hpp>
#include <agentlock/process_probe.hpp>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agentlock::daemon {

/// Runs one pass with `options` (whose cancel flag is set) for `config`, streaming each lock to
/// `sink` as it is handled (a runner may instead keep them in the report's `locks`: they are then
/// logged when it returns). Called on the worker thread, never twice at once.
using PassRunner =
    std::function<PassReport(const PassOptions& options, const Config& config, PassSink& sink)>;

/// The real thing: SystemProcessProbe, SystemTmuxProbe on the configured server, run_pass.
PassRunner system_pass_runner(HostFacts host);

/// Re-checks one worker (check_worker) with `options` for `config`; `fresh_tmux` is a tmux answer
/// just obtained, or null. Called on the worker thread, never at the same time as a pass.
using CheckRunner = std::function<WorkerCheck(const std::string& worker, const PassOptions& options,
                                              const Config& config, const TmuxFacts* fresh_tmux)>;

/// Asks the configured tmux server once. Called on the worker thread.
using TmuxRunner = std::function<TmuxFacts(const Config& config)>;

/// What the worker thread runs. Without `check` or `tmux`, events are unavailable: the daemon
/// polls with a pass every interval.
struct Backend {
    PassRunner pass;
    CheckRunner check;
    TmuxRunner tmux;
};

/// The real backend: run_pass and check_worker with the system probes.
Backend system_backend(const HostFacts& host);

/// Event sources to treat as unavailable, as if the kernel lacked them (for tests).
struct EventSwitches {
    bool pidfd = true;
    bool inotify = true;
};

/// How often tmux is asked while some lock is held by a session (or unknown for want of tmux):
/// short enough that a session's end reaches its locks within 1 s (p99) on a loaded machine.
inline constexpr std::chrono::milliseconds k_tmux_poll_every{300};
/// ... and after tmux's state was unknown, so that a hanging tmux does not hog the worker.
inline constexpr std::chrono::milliseconds k_tmux_poll_backoff{5000};
/// Lock-change events for one worker within this delay lead to one re-check.
inline constexpr std::chrono::milliseconds k_debounce{20};
/// A created agent.lock (not yet closed after writing) is judged after this delay, unless the
/// writer's close or rename comes first: a half-written lock is judged invalid, never removed,
/// but the finding would be noise.
inline constexpr std::chrono::milliseconds k_create_debounce{200};

/// The daemon's event loop. Construct, then run() on the main thread.
class Service {
public:
    /// `config` is the validated start-up config; `config_path` (empty for none) and `overrides`
    /// are kept to reload it on SIGHUP. `start_fields` are added to daemon.started. With only a
    /// pass runner, the daemon polls (no events).
    Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
            PassRunner runner, Fields start_fields = {});
    /// The same with a full backend: events as `config.events` says, minus `switches`.
    Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
            Backend backend, Fields start_fields = {}, EventSwitches switches = {});
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    /// Runs passes until SIGTERM or SIGINT and returns 0; returns 2 (after daemon.failed) when
    /// the first pass could use none of the roots. Roots lost later are only logged
    /// (root.unavailable) and retried. Throws boost::system::system_error when signals cannot be
    /// set up.
    int run();

    /// Called on the loop thread after each pass is logged (tests use it to synchronise).
    void set_after_pass(std::function<void(const PassReport&)> hook) {
        m_after_pass = std::move(hook);
    }
    /// Called on the loop thread after each batch of re-checks is logged (tests).
    void set_after_checks(std::function<void(const std::vector<CheckOutcome>&)> hook) {
        m_after_checks = std::move(hook);
    }

    /// The config in force (changes on a successful reload).
    const Config& config() const { return m_config; }

private:
    struct PassOutcome {
        std::optional<PassReport> report;
        std::string error;
        AddWatch watch = AddWatch::added; ///< syncing the inotify watches after the pass
        std::string watch_error;
    };
    struct Pending {
        std::chrono::steady_clock::time_point due;
        std::string trigger;
    };
    struct Batch {
        std::map<std::string, std::string> checks; ///< worker -> trigger
        std::vector<std::string> scans;            ///< new directories to search
        std::vector<SessionWait> session_waits;    ///< set when tmux is to be asked
        bool tmux_poll = false;
        unsigned watch_depth = 0;
    };
    struct BatchOutcome {
        std::vector<CheckOutcome> checks;
        std::optional<TmuxFacts> tmux; ///< the tmux re-poll's answer
        AddWatch watch = AddWatch::added;
        std::string watch_error;
        std::size_t scans = 0; ///< new directories searched
        std::string error;
        std::uint64_t elapsed_ms = 0;
    };

    void wait_for_signal();
    void on_signal(int signal_number);
    void start_pass();
    void on_pass_done(PassOutcome outcome);
    /// On the worker thread after a pass: watches the fleet the pass saw.
    AddWatch watch_after_pass(const PassReport& report, const PassOptions& options,
                              std::string& error);
    void schedule_next_pass();
    void request_pass();
    void reload();
    void begin_stop(int signal_number);
    void finish_stop();
    void arm_watchdog();
    void check_notify(bool sent);

    // Events.
    bool busy() const { return m_pass_running || m_batch_running; }
    bool events_on() const;
    bool inotify_on() const;
    std::chrono::milliseconds period() const;
    void setup_events();
    void close_events();
    void degrade(const std::string& source, const std::string& reason, const std::string& fallback);
    void request_check(const std::string& worker, const std::string& trigger,
                       std::chrono::milliseconds delay);
    /// Re-checks a worker whose lock was left as changed or being acquired, one interval later.
    void retry_later(const std::string& worker);
    void request_scan(const std::string& path);
    void request_full_pass(const std::string& why);
    void kick();
    void start_batch(Batch batch);
    void on_batch_done(BatchOutcome outcome);
    void arm_event_timers();
    void arm_check_timer();
    void update_owner(const std::string& worker);
    /// After a full pass: every owner as the table now says.
    void update_owners();
    void on_owner_exit(const std::set<std::string>& workers, const std::string& why);
    void on_dir_events(const std::vector<WatchEvent>& events, bool overflow);
    unsigned watch_depth() const;

    Config m_config;
    std::string m_config_path;
    ConfigOverrides m_overrides;
    EventLog& m_log;
    Backend m_backend;
    Fields m_start_fields;
    EventSwitches m_switches;
    Notifier m_notifier;
    PassLogger m_pass_log;
    std::function<void(const PassReport&)> m_after_pass;
    std::function<void(const std::vector<CheckOutcome>&)> m_after_checks;

    boost::asio::io_context m_io;
    boost::asio::steady_timer m_pass_timer;
    boost::asio::steady_timer m_watchdog_timer;
    boost::asio::steady_timer m_check_timer;
    boost::asio::steady_timer m_tmux_timer;
    boost::asio::steady_timer m_owner_timer;
    boost::asio::signal_set m_signals;
    std::optional<std::chrono::microseconds> m_watchdog;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
        m_pass_work;
    std::atomic<bool> m_cancel{false};

    bool m_pass_running = false;
    bool m_pass_again = false; ///< SIGUSR1 arrived while a pass (or re-check) ran
    bool m_pass_due = false;   ///< the timer or an event wants a pass while busy
    bool m_batch_running = false;
    bool m_stopping = false;
    bool m_ready_sent = false;
    bool m_notify_error_logged = false;
    /// finish_stop ran: no handler may arm anything again, even one whose wait had already
    /// completed (too late for cancel) when the stop came, or the loop never ends.
    bool m_stopped = false;
    int m_exit_code = 0;
    std::string m_last_status;
    std::chrono::steady_clock::time_point m_pass_started;

    // Event state (loop thread).
    SystemProcessProbe m_owner_probe;
    LockTable m_table;
    std::map<std::string, Pending> m_pending_checks;
    std::map<std::string, std::chrono::steady_clock::time_point> m_pending_scans;
    std::optional<std::chrono::steady_clock::time_point> m_check_timer_at;
    bool m_events_setup = false;
    bool m_pidfd_available = false;
    bool m_inotify_degraded = false;
    bool m_events_started_logged = false;
    bool m_tmux_armed = false;
    bool m_tmux_poll_due = false;
    bool m_tmux_unknown = false; ///< the last re-poll could not reach tmux
    bool m_owner_armed = false;
    bool m_owner_poll_due = false;
    std::set<std::string> m_degraded_logged;
    std::size_t m_pidfd_budget = 0;
    // Asio objects: destroyed before m_io (declared after it).
    std::unique_ptr<PidWatcher> m_pids;
    std::unique_ptr<DirWatcher> m_dirs;

    // Last member: destroyed (joined) first, before anything its pass could post to.
    boost::asio::thread_pool m_worker{1};
};

} // namespace agentlock::daemon
