#pragma once
// The long-running daemon: one Asio event loop with a pass timer, signals, the watchdog, and a
// worker thread that runs the passes so the loop stays responsive.

#include "config.hpp"
#include "event_log.hpp"
#include "notify.hpp"
#include "pass_log.hpp"

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
#include <optional>
#include <string>

namespace agentlock::daemon {

/// Runs one pass with `options` (whose cancel flag is set) for `config`. Called on the worker
/// thread, never twice at once.
using PassRunner = std::function<PassReport(const PassOptions& options, const Config& config)>;

/// The real thing: SystemProcessProbe, SystemTmuxProbe on the configured server, run_pass.
PassRunner system_pass_runner(HostFacts host);

/// The daemon's event loop. Construct, then run() on the main thread.
class Service {
public:
    /// `config` is the validated start-up config; `config_path` (empty for none) and `overrides`
    /// are kept to reload it on SIGHUP. `start_fields` are added to daemon.started.
    Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
            PassRunner runner, Fields start_fields = {});
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

    /// The config in force (changes on a successful reload).
    const Config& config() const { return m_config; }

private:
    struct PassOutcome {
        std::optional<PassReport> report;
        std::string error;
    };

    void wait_for_signal();
    void on_signal(int signal_number);
    void start_pass();
    void on_pass_done(PassOutcome outcome);
    void schedule_next_pass();
    void request_pass();
    void reload();
    void begin_stop(int signal_number);
    void finish_stop();
    void arm_watchdog();
    void check_notify(bool sent);

    Config m_config;
    std::string m_config_path;
    ConfigOverrides m_overrides;
    EventLog& m_log;
    PassRunner m_runner;
    Fields m_start_fields;
    Notifier m_notifier;
    PassLogger m_pass_log;
    std::function<void(const PassReport&)> m_after_pass;

    boost::asio::io_context m_io;
    boost::asio::steady_timer m_pass_timer;
    boost::asio::steady_timer m_watchdog_timer;
    boost::asio::signal_set m_signals;
    std::optional<std::chrono::microseconds> m_watchdog;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
        m_pass_work;
    std::atomic<bool> m_cancel{false};

    bool m_pass_running = false;
    bool m_pass_again = false; ///< SIGUSR1 arrived while a pass ran
    bool m_stopping = false;
    bool m_ready_sent = false;
    bool m_notify_error_logged = false;
    bool m_signals_cancelled = false;
    int m_exit_code = 0;
    std::string m_last_status;
    std::chrono::steady_clock::time_point m_pass_started;

    // Last member: destroyed (joined) first, before anything its pass could post to.
    boost::asio::thread_pool m_worker{1};
};

} // namespace agentlock::daemon
