#include "service.hpp"

#include "command_line.hpp"
#include "duration.hpp"

#include <agentlock/tmux_probe.hpp>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <unistd.h>

namespace agentlock::daemon {

namespace {

std::string signal_name(int signal_number) {
    switch (signal_number) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    case SIGUSR1:
        return "SIGUSR1";
    default:
        return "signal " + std::to_string(signal_number);
    }
}

bool no_root_usable(const PassReport& report) {
    return std::none_of(report.roots.begin(), report.roots.end(),
                        [](const RootReport& r) { return r.ok; });
}

} // namespace

PassRunner system_pass_runner(HostFacts host) {
    return [host = std::move(host)](const PassOptions& options, const Config& config) {
        SystemProcessProbe processes;
        SystemTmuxProbe tmux(tmux_server_of(config), config.tmux_timeout);
        return run_pass(options, processes, tmux, host);
    };
}

Service::Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
                 PassRunner runner, Fields start_fields)
    : m_config(std::move(config)), m_config_path(std::move(config_path)),
      m_overrides(std::move(overrides)), m_log(log), m_runner(std::move(runner)),
      m_start_fields(std::move(start_fields)), m_pass_log(log), m_pass_timer(m_io),
      m_watchdog_timer(m_io), m_signals(m_io) {}

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

    arm_watchdog();
    start_pass();
    m_io.run();
    return m_exit_code;
}

void Service::wait_for_signal() {
    m_signals.async_wait([this](const boost::system::error_code& ec, int signal_number) {
        if (ec) {
            return; // cancelled at stop
        }
        on_signal(signal_number);
        if (!m_signals_cancelled) {
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
        if (!m_stopping) {
            reload();
        }
        break;
    case SIGUSR1:
        if (!m_stopping) {
            request_pass();
        }
        break;
    default:
        break;
    }
}

void Service::request_pass() {
    if (m_pass_running) {
        m_log.log(LogLevel::debug, "pass.requested",
                  {{"signal", "SIGUSR1"}, {"when", m_pass_again ? "merged" : "after-current"}});
        m_pass_again = true;
        return;
    }
    m_log.log(LogLevel::debug, "pass.requested", {{"signal", "SIGUSR1"}, {"when", "now"}});
    m_pass_timer.cancel();
    start_pass();
}

void Service::start_pass() {
    m_pass_running = true;
    m_pass_again = false;
    m_pass_started = std::chrono::steady_clock::now();
    PassOptions options = pass_options_of(m_config);
    options.cancel = &m_cancel;
    m_pass_work.emplace(m_io.get_executor());
    boost::asio::post(m_worker, [this, options = std::move(options), config = m_config]() {
        PassOutcome outcome;
        try {
            outcome.report = m_runner(options, config);
        } catch (const std::exception& e) {
            outcome.error = e.what();
        } catch (...) {
            outcome.error = "unknown exception";
        }
        boost::asio::post(m_io, [this, outcome = std::move(outcome)]() mutable {
            on_pass_done(std::move(outcome));
        });
    });
}

void Service::on_pass_done(PassOutcome outcome) {
    m_pass_running = false;
    m_pass_work.reset();
    std::string status;
    if (outcome.report) {
        m_pass_log.log_pass(*outcome.report, m_stopping, std::chrono::steady_clock::now());
        status = status_line(m_pass_log.pass_count(), *outcome.report);
    } else {
        m_log.log(LogLevel::error, "pass.failed", {{"error", outcome.error}});
        status = "pass failed: " + outcome.error;
    }
    m_last_status = status;
    if (outcome.report && !m_ready_sent && !m_stopping && no_root_usable(*outcome.report)) {
        // A daemon that cannot use any root at start is misconfigured: fail (exit 2) before
        // READY=1 so systemd shows it. Roots that go away later are retried instead.
        m_log.log(LogLevel::error, "daemon.failed",
                  {{"error", "no worker root can be used at start-up"},
                   {"roots", join_list(m_config.roots)}});
        m_exit_code = k_exit_start_failure;
        m_stopping = true;
        m_cancel = true;
        finish_stop();
        return;
    }
    if (!m_stopping) {
        if (!m_ready_sent) {
            m_ready_sent = true;
            check_notify(m_notifier.ready(status));
        } else {
            check_notify(m_notifier.status(status));
        }
    }
    if (m_after_pass && outcome.report) {
        m_after_pass(*outcome.report);
    }
    if (m_stopping) {
        finish_stop();
        return;
    }
    if (m_pass_again) {
        start_pass();
        return;
    }
    schedule_next_pass();
}

void Service::schedule_next_pass() {
    // Passes start one interval apart; a pass longer than the interval is followed at once.
    m_pass_timer.expires_at(m_pass_started + m_config.interval);
    m_pass_timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec || m_pass_running || m_stopping) {
            return; // rescheduled, replaced by a SIGUSR1 pass, or stopping
        }
        start_pass();
    });
}

void Service::reload() {
    check_notify(m_notifier.reloading());
    std::string error;
    auto fresh = resolve_config(m_config_path, m_overrides, error);
    const std::string config_name = m_config_path.empty() ? "none" : m_config_path;
    if (!fresh) {
        m_log.log(LogLevel::error, "config.rejected",
                  {{"config", config_name}, {"error", error}, {"kept", "previous config"}});
    } else {
        Fields fields = {{"config", config_name}};
        for (auto& f : config_changes(m_config, *fresh)) {
            fields.push_back(std::move(f));
        }
        const bool interval_changed = fresh->interval != m_config.interval;
        m_config = std::move(*fresh);
        m_log.set_level(m_config.log_level);
        m_log.set_format(m_config.log_format);
        m_log.log(LogLevel::info, "config.reloaded", fields);
        if (interval_changed && !m_pass_running) {
            schedule_next_pass(); // replaces the pending wait
        }
    }
    // Before the first pass has ended, READY=1 is still to come from that pass.
    if (m_ready_sent) {
        check_notify(m_notifier.ready(m_last_status +
                                      (fresh ? "; config reloaded" : "; new config rejected")));
    }
}

void Service::begin_stop(int signal_number) {
    if (m_stopping) {
        // A second stop request while the pass winds down: the operator insists.
        m_log.log(LogLevel::warn, "daemon.stopping",
                  {{"signal", signal_name(signal_number)}, {"forced", "true"}});
        std::_Exit(0);
    }
    m_stopping = true;
    m_cancel = true;
    check_notify(m_notifier.stopping());
    m_log.log(LogLevel::info, "daemon.stopping",
              {{"signal", signal_name(signal_number)},
               {"pass_running", m_pass_running ? "true" : "false"}});
    m_pass_timer.cancel();
    if (!m_pass_running) {
        finish_stop();
    }
}

void Service::finish_stop() {
    m_pass_timer.cancel();
    m_watchdog_timer.cancel();
    m_signals_cancelled = true;
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
        if (ec) {
            return;
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

} // namespace agentlock::daemon
