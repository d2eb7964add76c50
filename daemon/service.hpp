#pragma once
// The long-running daemon: wiring around the library's Monitor, which decides what to judge
// again and when. One Asio event loop maps the signals, the watchdog, one wake-up timer, the
// pidfd epoll descriptor and inotify onto the monitor; one worker thread runs the work it hands
// out (full passes and batches of re-checks), one at a time, so that no two removals ever race
// inside the daemon and the loop stays responsive. The loop only dispatches and logs.

#include "clock_steps.hpp"
#include "event_log.hpp"
#include "event_sources.hpp"
#include "fleet_link.hpp"
#include "metrics.hpp"
#include "notify.hpp"
#include "pass_log.hpp"
#include "work.hpp"
#include <agentlock/config.hpp>
#include <agentlock/fleet.hpp>

#include <agentlock/monitor.hpp>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace agentlock::daemon {

/// The daemon's event loop. Construct, then run() on the main thread.
class Service {
public:
    /// `config` is the validated start-up config; `config_path` (empty for none) and `overrides`
    /// are kept to reload it on SIGHUP. `start_fields` are added to daemon.started. Events are
    /// on as `config.events` says and the kernel allows; with only a pass runner in `backend`,
    /// the daemon polls.
    Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
            Backend backend, Fields start_fields = {});
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
    void wait_for_signal();
    void on_signal(int signal_number);
    /// Hands the monitor's due work to the worker thread and sets the wake-up timer.
    void dispatch();
    void arm_wake();
    void log_pass_request(const char* key, const std::string& cause, PassWhen when);
    /// The options of the next piece of work, with the clock steps and owners known now.
    PassOptions work_options();
    void start_pass();
    void on_pass_done(PassOutcome outcome);
    void start_batch(RecheckBatch batch);
    void on_batch_done(const BatchOutcome& outcome);
    void reload();
    void begin_stop(int signal_number);
    void finish_stop();
    void arm_watchdog();
    void check_notify(bool sent);
    void setup_events();
    void close_events();
    using Handlers = EventSources::Handlers;
    /// What the event sources report, mapped onto the monitor.
    Handlers event_handlers();
    Degrade degrader();
    void degrade(const std::string& source, const std::string& reason, const std::string& fallback);
    void after_work(const MonitorNews& news, const std::string& watch_error);
    /// Fleet mode: joins the fleet (a thread of its own) when the config has a fleet block.
    void start_fleet();

    Config m_config;
    std::string m_config_path;
    ConfigOverrides m_overrides;
    EventLog& m_log;
    Backend m_backend;
    Fields m_start_fields;
    Notifier m_notifier;
    PassLogger m_pass_log;
    MetricsWriter m_metrics;
    std::function<void(const PassReport&)> m_after_pass;
    std::function<void(const std::vector<CheckOutcome>&)> m_after_checks;
    SteadyMonitorClock m_clock;
    Monitor m_monitor;

    boost::asio::io_context m_io;
    boost::asio::steady_timer m_wake_timer;
    std::optional<MonoTime> m_wake_at;
    boost::asio::steady_timer m_watchdog_timer;
    boost::asio::signal_set m_signals;
    std::optional<std::chrono::microseconds> m_watchdog;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
        m_work_guard;
    std::atomic<bool> m_cancel{false};
    /// Which server answered on each socket in passes and re-polls (worker thread only).
    ServersSeen m_servers_seen;

    /// finish_stop ran: no handler may arm anything again, even one whose wait had already
    /// completed (too late for cancel) when the stop came, or the loop never ends.
    bool m_stopped = false;
    bool m_ready_sent = false;
    bool m_notify_error_logged = false;
    bool m_events_started_logged = false;
    int m_exit_code = 0;
    std::string m_last_status;
    std::set<std::string> m_degraded_logged;

    // Event sources (loop thread). Asio objects: destroyed before m_io (declared after it).
    EventSources m_sources;
    ClockStepWatcher m_clock_steps;

    // Fleet mode: its thread posts log events and pass requests to m_io; stopped before m_io
    // goes. Its judge_foreign is called on the worker thread, which is joined before it.
    FleetLink m_fleet;

    // Last member: destroyed (joined) first, before anything its pass could post to.
    boost::asio::thread_pool m_worker{1};
};

} // namespace agentlock::daemon
