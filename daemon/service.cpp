#include "service.hpp"

#include "command_line.hpp"

#include <agentlock/duration.hpp>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

namespace agentlock::daemon {

namespace {

std::uint64_t open_files_limit() {
    rlimit lim{};
    return ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY ? lim.rlim_cur
                                                                                  : 1u << 20;
}

bool no_root_usable(const PassReport& report) {
    return std::none_of(report.roots.begin(), report.roots.end(),
                        [](const RootReport& r) { return r.ok; });
}

} // namespace

Service::Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
                 Backend backend, Fields start_fields)
    : m_config(std::move(config)), m_config_path(std::move(config_path)),
      m_overrides(std::move(overrides)), m_log(log), m_backend(std::move(backend)),
      m_start_fields(std::move(start_fields)), m_pass_log(log), m_metrics(log),
      m_monitor(m_clock, monitor_settings_of(m_config)), m_wake_timer(m_io), m_watchdog_timer(m_io),
      m_signals(m_io), m_sources(m_io, open_files_limit(), event_handlers()),
      m_clock_steps(m_io, log, [this](const ClockStep& step) { m_monitor.clock_stepped(step); }) {}

Service::~Service() {
    m_cancel = true;
    m_worker.join();
}

int Service::run() {
    m_signals.add(SIGTERM);
    m_signals.add(SIGINT);
    m_signals.add(SIGHUP);
    m_signals.add(SIGUSR1);
    wait_for_signal();

    m_watchdog = Notifier::watchdog_timeout();
    Fields fields = {{"version", AGENTLOCK_VERSION},
                     {"pid", std::to_string(::getpid())},
                     {"config", m_config_path.empty() ? "none" : m_config_path}};
    for (auto& f : config_fields(m_config)) {
        if (f.first == "log_format") {
            f.second = std::string(to_string(m_log.format()));
        }
        fields.push_back(std::move(f));
    }
    fields.emplace_back("tmux", describe_tmux_server(m_config));
    fields.emplace_back(
        "watchdog",
        m_watchdog
            ? format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(*m_watchdog))
            : "off");
    fields.insert(fields.end(), m_start_fields.begin(), m_start_fields.end());
    m_log.log(LogLevel::info, "daemon.started", fields);
    start_fleet();

    arm_watchdog();
    m_clock_steps.start();
    setup_events();
    m_metrics.update(m_config, m_monitor, m_degraded_logged);
    dispatch();
    m_io.run();
    return m_exit_code;
}

void Service::wait_for_signal() {
    m_signals.async_wait([this](const boost::system::error_code& ec, int signal_number) {
        if (ec) {
            return; // cancelled at stop
        }
        on_signal(signal_number);
        if (!m_stopped) {
            wait_for_signal();
        }
    });
}

void Service::on_signal(int signal_number) {
    switch (signal_number) {
    case SIGTERM:
    case SIGINT:
        begin_stop(signal_number);
        break;
    case SIGHUP:
        if (!m_monitor.stopping()) {
            reload();
        }
        break;
    case SIGUSR1:
        if (!m_monitor.stopping()) {
            log_pass_request("signal", "SIGUSR1", m_monitor.request_pass());
            dispatch();
        }
        break;
    default:
        break;
    }
}

void Service::log_pass_request(const char* key, const std::string& cause, PassWhen when) {
    m_log.log(LogLevel::debug, "pass.requested",
              {{key, cause}, {"when", std::string(to_string(when))}});
}

void Service::dispatch() {
    for (auto& [reason, when] : m_monitor.take_pass_requests()) {
        log_pass_request("reason", reason, when);
    }
    if (std::optional<MonitorWork> work = m_monitor.next_work()) {
        if (work->kind == MonitorWork::Kind::pass) {
            start_pass();
        } else {
            start_batch(std::move(work->batch));
        }
    }
    arm_wake();
}

void Service::arm_wake() {
    const std::optional<MonoTime> wake = m_monitor.next_wake();
    if (!wake || m_stopped) {
        m_wake_at.reset();
        m_wake_timer.cancel();
        return;
    }
    if (m_wake_at == wake) {
        return; // the timer already fires then
    }
    m_wake_at = wake;
    m_wake_timer.expires_at(*wake);
    m_wake_timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec || m_stopped) {
            return; // re-armed, or cancelled at stop
        }
        m_wake_at.reset();
        dispatch();
    });
}

PassOptions Service::work_options() {
    m_clock_steps.poll(); // a step the loop has not read yet must count for this judgement
    PassOptions options = pass_options_of(m_config);
    options.cancel = &m_cancel;
    options.clock = m_monitor.clock_facts();
    options.known_owner = [this](std::string_view worker) { return m_monitor.known_owner(worker); };
    if (FleetMember* fleet = m_fleet.member()) {
        options.judge_foreign = [fleet](const LockInfo& lock, const Judgement& foreign,
                                        bool confirm) {
            return fleet->judge_foreign(lock, foreign, confirm);
        };
        options.remove_host_gone = fleet->remove_host_gone();
    }
    return options;
}

void Service::start_pass() {
    PassOptions options = work_options();
    options.per_lock_collisions = false; // the locks' own findings say it
    DirWatcher* dirs = m_sources.dirs(m_monitor);
    m_work_guard.emplace(m_io.get_executor());
    boost::asio::post(m_worker, [this, options = std::move(options), config = m_config, dirs]() {
        PassOutcome outcome =
            run_full_pass(m_backend, options, config, m_pass_log, dirs, &m_servers_seen);
        boost::asio::post(m_io, [this, outcome = std::move(outcome)]() mutable {
            on_pass_done(std::move(outcome));
        });
    });
}

void Service::on_pass_done(PassOutcome outcome) {
    m_work_guard.reset();
    const bool stopping = m_monitor.stopping();
    std::string status;
    if (outcome.report) {
        m_pass_log.end_pass(*outcome.report, stopping, std::chrono::steady_clock::now());
        status = status_line(m_pass_log.pass_count(), *outcome.report);
    } else {
        m_log.log(LogLevel::error, "pass.failed", {{"error", outcome.error}});
        status = "pass failed: " + outcome.error;
    }
    const MonitorNews news = m_monitor.pass_done(outcome.report ? &*outcome.report : nullptr,
                                                 outcome.watch == AddWatch::exhausted);
    after_work(news, outcome.watch_error);
    m_fleet.publish(m_monitor.table());
    m_metrics.pass_done(outcome, m_config, m_monitor, m_degraded_logged);
    m_last_status = status;
    if (outcome.report && !m_ready_sent && !stopping && no_root_usable(*outcome.report)) {
        // A daemon that cannot use any root at start is misconfigured: fail (exit 2) before
        // READY=1 so systemd shows it. Roots that go away later are retried instead.
        m_log.log(LogLevel::error, "daemon.failed",
                  {{"error", "no worker root can be used at start-up"},
                   {"roots", join_list(m_config.roots)}});
        m_exit_code = k_exit_start_failure;
        m_monitor.stop();
        m_cancel = true;
        finish_stop();
        return;
    }
    if (!stopping) {
        check_notify(m_ready_sent ? m_notifier.status(status) : m_notifier.ready(status));
        m_ready_sent = true;
    }
    if (outcome.report && m_monitor.events_on() && !m_events_started_logged) {
        m_events_started_logged = true;
        m_log.log(LogLevel::info, "events.started", m_sources.started_fields(m_monitor));
    }
    if (m_after_pass && outcome.report) {
        m_after_pass(*outcome.report);
    }
    outcome.report.reset();
    // A pass allocates and frees memory in proportion to the fleet; give what is free back to
    // the system, so that the resident size between passes is what the daemon keeps.
    ::malloc_trim(0);
    if (stopping) {
        finish_stop();
        return;
    }
    dispatch();
}

void Service::start_batch(RecheckBatch batch) {
    m_work_guard.emplace(m_io.get_executor());
    PassOptions options = work_options();
    DirWatcher* dirs = m_sources.dirs(m_monitor);
    boost::asio::post(m_worker, [this, batch = std::move(batch), options = std::move(options),
                                 config = m_config, dirs]() mutable {
        BatchOutcome out =
            run_recheck_batch(m_backend, std::move(batch), options, config, dirs, &m_servers_seen);
        boost::asio::post(m_io, [this, out = std::move(out)]() { on_batch_done(out); });
    });
}

void Service::on_batch_done(const BatchOutcome& outcome) {
    m_work_guard.reset();
    const MonitorNews news = m_monitor.batch_done(
        outcome.checks, outcome.tmux, outcome.watch == AddWatch::exhausted, outcome.tmux_servers);
    // Removals are logged whatever happened meanwhile (a reload that turned events off).
    log_recheck_batch(outcome, m_monitor.table(), m_pass_log, m_log);
    after_work(news, outcome.watch_error);
    m_fleet.publish(m_monitor.table());
    m_metrics.batch_done(outcome, m_config, m_monitor, m_degraded_logged);
    if (m_after_checks) {
        m_after_checks(outcome.checks);
    }
    if (m_monitor.stopping()) {
        finish_stop();
        return;
    }
    dispatch();
}

void Service::after_work(const MonitorNews& news, const std::string& watch_error) {
    if (news.inotify_exhausted) {
        degrade("inotify", watch_error, "a full pass every " + format_duration(m_config.interval));
    }
    m_sources.check(m_monitor, m_config.interval, monitor_settings_of(m_config).timings.tmux_poll,
                    degrader());
}

void Service::reload() {
    check_notify(m_notifier.reloading());
    auto fresh = resolve_config(m_config_path, m_overrides);
    const std::string config_name = m_config_path.empty() ? "none" : m_config_path;
    if (!fresh) {
        m_log.log(LogLevel::error, "config.rejected",
                  {{"config", config_name},
                   {"error", fresh.error().message},
                   {"kept", "previous config"}});
    } else {
        Fields fields = {{"config", config_name}};
        for (auto& f : config_changes(m_config, *fresh)) {
            fields.push_back(std::move(f));
        }
        const bool events_were_on = m_monitor.events_on();
        const Config old = m_config;
        m_config = std::move(*fresh);
        m_monitor.reconfigure(monitor_settings_of(m_config));
        m_log.set_level(m_config.log_level);
        m_log.set_format(m_config.log_format);
        m_log.log(LogLevel::info, "config.reloaded", fields);
        if (old.fleet != m_config.fleet) {
            m_log.log(LogLevel::warn, "fleet.restart_needed",
                      {{"reason", "the fleet block changed; it takes effect when agentlockd "
                                  "restarts"}});
        }
        if (events_were_on && !m_config.events) {
            close_events(); // back to polling
        } else if (!events_were_on && m_config.events) {
            setup_events();
        }
        if (m_monitor.events_on() && (!events_were_on || scope_differs(old, m_config))) {
            // What is watched and known must follow the new roots, rules and tmux server.
            log_pass_request("reason", "config reloaded", m_monitor.request_pass());
        }
        dispatch(); // the pass period may have changed
    }
    // Before the first pass has ended, READY=1 is still to come from that pass.
    if (m_ready_sent) {
        check_notify(m_notifier.ready(m_last_status +
                                      (fresh ? "; config reloaded" : "; new config rejected")));
    }
}

void Service::begin_stop(int signal_number) {
    if (m_monitor.stopping()) {
        // A second stop request while the pass winds down: the operator insists.
        m_log.log(LogLevel::warn, "daemon.stopping",
                  {{"signal", signal_name(signal_number)}, {"forced", "true"}});
        std::_Exit(0);
    }
    m_monitor.stop();
    m_cancel = true;
    check_notify(m_notifier.stopping());
    m_log.log(LogLevel::info, "daemon.stopping",
              {{"signal", signal_name(signal_number)},
               {"pass_running", m_monitor.pass_running() ? "true" : "false"}});
    if (!m_monitor.busy()) {
        finish_stop();
    }
}

void Service::finish_stop() {
    m_stopped = true;
    m_wake_timer.cancel();
    m_watchdog_timer.cancel();
    m_clock_steps.close();
    m_fleet.stop();
    close_events();
    boost::system::error_code ec;
    m_signals.cancel(ec);
    // With nothing left waiting, m_io.run() returns.
}

void Service::arm_watchdog() {
    if (!m_watchdog) {
        return;
    }
    m_watchdog_timer.expires_after(*m_watchdog / 2);
    m_watchdog_timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec || m_stopped) {
            return; // cancelled, or due already when the stop cancelled the timer
        }
        check_notify(m_notifier.watchdog());
        arm_watchdog();
    });
}

void Service::check_notify(bool sent) {
    if (sent || m_notify_error_logged) {
        return;
    }
    m_notify_error_logged = true; // once: a broken socket stays broken
    m_log.log(LogLevel::warn, "notify.failed", {{"error", m_notifier.last_error()}});
}

// ---------------------------------------------------------------------------------------------
// Event sources. Each only tells the monitor; the worker thread then judges with the library's
// one rule and removes only through its reaper.

Service::Handlers Service::event_handlers() {
    // Each only tells the monitor, and only while events are on and the daemon is not stopping.
    auto live = [this] { return m_monitor.events_on() && !m_monitor.stopping(); };
    return {
        [this, live](const std::set<std::string>& workers, const std::string& why) {
            if (live()) {
                m_log.log(LogLevel::debug, "owner.exited",
                          {{"workers", join_names(workers)}, {"reason", why}});
                m_monitor.owner_exited(workers);
                dispatch();
            }
        },
        [this, live](std::int64_t pid) {
            if (live()) {
                m_log.log(LogLevel::debug, "tmux.process_exited", {{"pid", std::to_string(pid)}});
                m_monitor.tmux_exited(pid);
                dispatch();
            }
        },
        [this, live](const std::vector<WatchEvent>& events, bool overflow) {
            if (!live()) {
                return;
            }
            if (overflow) {
                m_log.log(LogLevel::warn, "events.overflow",
                          {{"reason", "the inotify queue overflowed: events were lost"}});
            }
            m_monitor.dir_events(events, overflow);
            dispatch();
        }};
}

Degrade Service::degrader() {
    return [this](const std::string& source, const std::string& reason,
                  const std::string& fallback) { degrade(source, reason, fallback); };
}

void Service::setup_events() {
    if (m_config.events && m_backend.check && m_backend.tmux) {
        m_sources.open(m_monitor, m_config.interval, degrader());
    }
}

void Service::close_events() {
    m_sources.close(m_monitor);
}

void Service::degrade(const std::string& source, const std::string& reason,
                      const std::string& fallback) {
    if (!m_degraded_logged.insert(source).second) {
        return; // once: it stays degraded
    }
    m_log.log(LogLevel::warn, "events.degraded",
              {{"source", source}, {"reason", reason}, {"fallback", fallback}});
}

void Service::start_fleet() {
    m_fleet.join(m_config, m_io, m_log, [this](const std::string& reason) {
        if (!m_stopped && !m_monitor.stopping()) {
            log_pass_request("reason", reason, m_monitor.request_pass());
            dispatch();
        }
    });
}

} // namespace agentlock::daemon
