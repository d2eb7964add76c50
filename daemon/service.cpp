#include "service.hpp"

#include "command_line.hpp"

#include "watch_plan.hpp"

#include <agentlock/duration.hpp>
#include <agentlock/fd.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/tmux_probe.hpp>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <malloc.h>
#include <sys/inotify.h>
#include <sys/resource.h>
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

// Logs each lock of a pass as the worker thread handles it, so that no record outlives its
// moment (the loop thread does not touch the logger while a pass runs).
class LoggingSink final : public PassSink {
public:
    explicit LoggingSink(PassLogger& log) : m_log(log) {}
    void on_tmux(const TmuxFacts& tmux) override { m_tmux = tmux; }
    void on_lock(LockRecord&& record) override { m_log.log_lock(record, m_tmux); }

private:
    PassLogger& m_log;
    TmuxFacts m_tmux;
};

bool no_root_usable(const PassReport& report) {
    return std::none_of(report.roots.begin(), report.roots.end(),
                        [](const RootReport& r) { return r.ok; });
}

} // namespace

PassRunner system_pass_runner(HostFacts host) {
    return
        [host = std::move(host)](const PassOptions& options, const Config& config, PassSink& sink) {
            SystemProcessProbe processes;
            SystemTmuxProbe tmux(tmux_server_of(config), config.tmux_timeout);
            return run_pass(options, processes, tmux, host, sink);
        };
}

Backend system_backend(const HostFacts& host) {
    Backend b;
    b.pass = system_pass_runner(host);
    b.check = [host](const std::string& worker, const PassOptions& options, const Config& config,
                     const TmuxFacts* fresh_tmux) {
        SystemProcessProbe processes;
        SystemTmuxProbe tmux(tmux_server_of(config), config.tmux_timeout);
        return check_worker(worker, options, processes, tmux, host, fresh_tmux);
    };
    b.tmux = [](const Config& config) {
        SystemTmuxProbe tmux(tmux_server_of(config), config.tmux_timeout);
        return tmux.query();
    };
    return b;
}

Service::Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
                 PassRunner runner, Fields start_fields)
    : Service(std::move(config), std::move(config_path), std::move(overrides), log,
              Backend{std::move(runner), {}, {}}, std::move(start_fields)) {}

Service::Service(Config config, std::string config_path, ConfigOverrides overrides, EventLog& log,
                 Backend backend, Fields start_fields, EventSwitches switches)
    : m_config(std::move(config)), m_config_path(std::move(config_path)),
      m_overrides(std::move(overrides)), m_log(log), m_backend(std::move(backend)),
      m_start_fields(std::move(start_fields)), m_switches(switches), m_pass_log(log),
      m_pass_timer(m_io), m_watchdog_timer(m_io), m_check_timer(m_io), m_tmux_timer(m_io),
      m_owner_timer(m_io), m_signals(m_io) {
    rlimit lim{};
    const std::uint64_t nofile =
        ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY ? lim.rlim_cur
                                                                               : 1u << 20;
    m_pidfd_budget = pidfd_budget(nofile);
}

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
    setup_events();
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
    if (busy()) {
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
    m_pass_due = false;
    m_pass_started = std::chrono::steady_clock::now();
    PassOptions options = pass_options_of(m_config);
    options.cancel = &m_cancel;
    options.per_lock_collisions = false; // the locks' own findings say it
    const bool sync_watches = inotify_on();
    m_pass_work.emplace(m_io.get_executor());
    boost::asio::post(
        m_worker, [this, options = std::move(options), config = m_config, sync_watches]() {
            PassOutcome outcome;
            try {
                m_pass_log.begin_pass();
                LoggingSink sink(m_pass_log);
                outcome.report = m_backend.pass(options, config, sink);
                // Records the runner kept instead of streaming them: logged now, as if streamed.
                for (const auto& rec : outcome.report->locks) {
                    m_pass_log.log_lock(rec, outcome.report->tmux);
                }
                if (outcome.report->summaries.empty()) {
                    summarize_locks(*outcome.report);
                }
                outcome.report->locks.clear();
                if (sync_watches && !m_cancel.load()) {
                    outcome.watch = watch_after_pass(*outcome.report, options, outcome.watch_error);
                }
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

AddWatch Service::watch_after_pass(const PassReport& report, const PassOptions& options,
                                   std::string& error) {
    // Every worker whose .runtime held a lock, removed ones too: the next agent writes its lock
    // there.
    std::vector<std::string_view> workers;
    workers.reserve(report.summaries.size());
    unsigned deepest = 0;
    for (const auto& s : report.summaries) {
        workers.emplace_back(s.worker.view());
        const std::string worker = s.worker.str();
        if (auto root = root_containing(options.roots, worker)) {
            deepest = std::max(deepest, depth_below(*root, worker).value_or(0));
        }
    }
    const std::uint64_t round = m_dirs->begin_marking();
    FleetWatch watched = watch_fleet(options.roots, workers, options.walk,
                                     watch_depth_for(deepest, options.walk), *m_dirs);
    if (watched.worst != AddWatch::exhausted) {
        m_dirs->drop_unmarked(round); // what the fleet no longer needs
    }
    error = watched.error;
    return watched.worst;
}

void Service::on_pass_done(PassOutcome outcome) {
    m_pass_running = false;
    m_pass_work.reset();
    std::string status;
    if (outcome.report) {
        m_pass_log.end_pass(*outcome.report, m_stopping, std::chrono::steady_clock::now());
        status = status_line(m_pass_log.pass_count(), *outcome.report);
        if (!m_stopping && events_on()) {
            for (const auto& s : outcome.report->summaries) {
                if (s.action == LockAction::skipped_changed) {
                    retry_later(s.worker.str());
                }
            }
            m_table.replace(*outcome.report);
            update_owners();
            if (outcome.watch == AddWatch::exhausted) {
                m_inotify_degraded = true;
                degrade("inotify", outcome.watch_error,
                        "a full pass every " + format_duration(m_config.interval));
            }
        }
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
    if (outcome.report && events_on() && !m_events_started_logged) {
        m_events_started_logged = true;
        m_log.log(LogLevel::info, "events.started",
                  {{"pidfd", m_pidfd_available ? "on" : "off"},
                   {"inotify", inotify_on() ? "on" : "off"},
                   {"pidfds", std::to_string(m_pids->open_count())},
                   {"pidfd_budget", std::to_string(m_pidfd_budget)},
                   {"watches", std::to_string(m_dirs->count())},
                   {"polled_owners", std::to_string(m_pids->unwatched().size())},
                   {"full_pass_every", format_duration(period())}});
    }
    if (m_after_pass && outcome.report) {
        m_after_pass(*outcome.report);
    }
    outcome.report.reset();
    // A pass allocates and frees memory in proportion to the fleet; give what is free back to
    // the system, so that the resident size between passes is what the daemon keeps.
    ::malloc_trim(0);
    if (m_stopping) {
        finish_stop();
        return;
    }
    if (m_pass_again) {
        start_pass();
        return;
    }
    schedule_next_pass();
    arm_event_timers();
    kick();
}

void Service::schedule_next_pass() {
    // Passes start one period apart; a pass longer than the period is followed at once.
    m_pass_timer.expires_at(m_pass_started + period());
    m_pass_timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec || m_pass_running || m_stopping) {
            return; // rescheduled, replaced by a SIGUSR1 pass, or stopping
        }
        if (m_batch_running) {
            m_pass_due = true; // right after the re-checks
            return;
        }
        start_pass();
    });
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
        const std::chrono::milliseconds old_period = period();
        const bool events_were_on = events_on();
        const Config old = m_config;
        m_config = std::move(*fresh);
        m_log.set_level(m_config.log_level);
        m_log.set_format(m_config.log_format);
        m_log.log(LogLevel::info, "config.reloaded", fields);
        if (events_were_on && !events_on()) {
            close_events(); // back to polling
        } else if (!events_were_on && m_config.events) {
            setup_events(); // events_on() once it succeeds
        }
        const bool scope_changed = old.roots != m_config.roots || old.prune != m_config.prune ||
                                   old.max_depth != m_config.max_depth ||
                                   old.one_file_system != m_config.one_file_system ||
                                   old.tmux_socket != m_config.tmux_socket ||
                                   old.tmux_socket_path != m_config.tmux_socket_path;
        if (events_on() && (!events_were_on || scope_changed)) {
            // What is watched and known must follow the new roots, rules and tmux server.
            request_full_pass("config reloaded");
        } else if (period() != old_period && !m_pass_running) {
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
    if (!busy()) {
        finish_stop();
    }
}

void Service::finish_stop() {
    m_pass_timer.cancel();
    m_watchdog_timer.cancel();
    close_events();
    m_stopped = true;
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
// Events. Every event ends in request_check, request_scan or request_full_pass; the worker
// thread then judges with the library's one rule and removes only through its reaper.

namespace {

std::string join_names(const std::set<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
        out += out.empty() ? "" : ",";
        out += n;
    }
    return out;
}

} // namespace

bool Service::events_on() const {
    return m_events_setup && m_config.events && m_backend.check && m_backend.tmux;
}

bool Service::inotify_on() const {
    return events_on() && m_dirs && m_dirs->is_open() && !m_inotify_degraded;
}

std::chrono::milliseconds Service::period() const {
    const bool events = inotify_on();
    if (events && !m_table.frozen_roots().empty()) {
        // A root that cannot be walked is not watched either: poll until it is back.
        return std::min(m_config.interval, pass_period(m_config, true));
    }
    return pass_period(m_config, events);
}

void Service::setup_events() {
    if (!m_config.events || !m_backend.check || !m_backend.tmux) {
        return;
    }
    m_events_setup = true;

    std::string pidfd_problem;
    if (!m_switches.pidfd) {
        pidfd_problem = "pidfd disabled for a test (--events-test-disable)";
    } else {
        Fd probe(open_pidfd(::getpid()));
        if (!probe) {
            const int err = errno;
            pidfd_problem = std::string("pidfd_open: ") + std::strerror(err) +
                            (err == ENOSYS ? " (Linux 5.3 or later needed)" : "");
        }
    }
    m_pidfd_available = pidfd_problem.empty();
    if (!m_pids) {
        m_pids = std::make_unique<PidWatcher>(
            m_io, m_pidfd_budget, m_owner_probe,
            [this](const std::set<std::string>& workers, const std::string& why) {
                on_owner_exit(workers, why);
            },
            m_pidfd_available);
    } else {
        m_pids->set_enabled(m_pidfd_available);
    }
    if (!m_pidfd_available) {
        degrade("pidfd", pidfd_problem,
                "live owners re-checked every " + format_duration(m_config.interval));
    }

    if (!m_dirs) {
        m_dirs = std::make_unique<DirWatcher>(m_io);
    }
    m_inotify_degraded = false;
    std::string inotify_problem;
    if (!m_switches.inotify) {
        inotify_problem = "inotify disabled for a test (--events-test-disable)";
    } else if (!m_dirs->is_open()) {
        if (m_dirs->open(inotify_problem)) {
            m_dirs->start([this](const std::vector<WatchEvent>& events, bool overflow) {
                on_dir_events(events, overflow);
            });
        }
    }
    if (!inotify_problem.empty()) {
        degrade("inotify", inotify_problem,
                "a full pass every " + format_duration(m_config.interval));
    }
}

void Service::close_events() {
    m_events_setup = false;
    if (m_pids) {
        m_pids->clear();
    }
    if (m_dirs) {
        m_dirs->close();
    }
    m_pending_checks.clear();
    m_pending_scans.clear();
    m_check_timer_at.reset();
    m_check_timer.cancel();
    m_tmux_timer.cancel();
    m_owner_timer.cancel();
    m_tmux_armed = false;
    m_owner_armed = false;
    m_tmux_poll_due = false;
    m_owner_poll_due = false;
}

void Service::degrade(const std::string& source, const std::string& reason,
                      const std::string& fallback) {
    if (!m_degraded_logged.insert(source).second) {
        return; // once: it stays degraded
    }
    m_log.log(LogLevel::warn, "events.degraded",
              {{"source", source}, {"reason", reason}, {"fallback", fallback}});
}

unsigned Service::watch_depth() const {
    return watch_depth_for(m_table.deepest_worker(m_config.roots), pass_options_of(m_config).walk);
}

void Service::update_owner(const std::string& worker) {
    if (!m_pids || !events_on()) {
        return;
    }
    m_pids->set_owner(worker, m_table.owner_of(worker));
    if (m_pidfd_available && !m_pids->unwatched().empty()) {
        degrade("pidfd", m_pids->unwatched_reason(),
                "owners without a pidfd re-checked every " + format_duration(m_config.interval));
    }
}

void Service::update_owners() {
    if (!m_pids || !events_on()) {
        return;
    }
    // Owners of workers the table no longer knows, then the owner of every worker it knows.
    m_pids->forget_if(
        [this](const std::string& worker) { return m_table.find(worker) == nullptr; });
    m_table.for_each_worker([this](const std::string& worker) { update_owner(worker); });
}

void Service::on_owner_exit(const std::set<std::string>& workers, const std::string& why) {
    if (!events_on() || m_stopping) {
        return;
    }
    m_log.log(LogLevel::debug, "owner.exited", {{"workers", join_names(workers)}, {"reason", why}});
    for (const auto& worker : workers) {
        request_check(worker, "pidfd", std::chrono::milliseconds(0));
    }
}

void Service::request_check(const std::string& worker, const std::string& trigger,
                            std::chrono::milliseconds delay) {
    if (!events_on() || m_stopping) {
        return;
    }
    const auto due = std::chrono::steady_clock::now() + delay;
    auto [it, inserted] = m_pending_checks.try_emplace(worker, Pending{due, trigger});
    if (!inserted && due < it->second.due) {
        it->second = Pending{due, trigger};
    }
    if (delay.count() == 0) {
        kick();
    } else {
        arm_check_timer();
    }
}

void Service::retry_later(const std::string& worker) {
    // A lock left because it changed or was being acquired: an acquirer that dies or gives up
    // without touching the lock sends no event, so judge it again one interval later rather
    // than at the next full pass.
    request_check(worker, "poll", m_config.interval);
}

void Service::request_scan(const std::string& path) {
    if (!inotify_on() || m_stopping) {
        return;
    }
    const auto due = std::chrono::steady_clock::now() + k_debounce;
    auto [it, inserted] = m_pending_scans.try_emplace(path, due);
    if (!inserted && due < it->second) {
        it->second = due;
    }
    arm_check_timer();
}

void Service::request_full_pass(const std::string& why) {
    if (m_stopping) {
        return;
    }
    if (busy()) {
        m_log.log(LogLevel::debug, "pass.requested",
                  {{"reason", why}, {"when", m_pass_due ? "merged" : "after-current"}});
        m_pass_due = true;
        return;
    }
    m_log.log(LogLevel::debug, "pass.requested", {{"reason", why}, {"when", "now"}});
    m_pass_timer.cancel();
    start_pass();
}

void Service::arm_check_timer() {
    std::optional<std::chrono::steady_clock::time_point> earliest;
    for (const auto& [worker, p] : m_pending_checks) {
        earliest = earliest ? std::min(*earliest, p.due) : p.due;
    }
    for (const auto& [path, due] : m_pending_scans) {
        earliest = earliest ? std::min(*earliest, due) : due;
    }
    if (!earliest || (m_check_timer_at && *m_check_timer_at <= *earliest)) {
        return; // nothing pending, or the timer already fires early enough
    }
    m_check_timer_at = *earliest;
    m_check_timer.expires_at(*earliest);
    m_check_timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec) {
            return; // re-armed or cancelled
        }
        m_check_timer_at.reset();
        kick();
    });
}

void Service::arm_event_timers() {
    if (!events_on() || m_stopping) {
        return;
    }
    if (!m_tmux_armed && !m_table.session_waits().empty()) {
        m_tmux_armed = true;
        m_tmux_timer.expires_after(m_tmux_unknown ? k_tmux_poll_backoff : k_tmux_poll_every);
        m_tmux_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec) {
                return;
            }
            m_tmux_armed = false;
            m_tmux_poll_due = true;
            kick();
        });
    }
    if (!m_owner_armed && inotify_on() && m_pids && !m_pids->unwatched().empty()) {
        // Without inotify, full passes every interval already cover these owners.
        m_owner_armed = true;
        m_owner_timer.expires_after(m_config.interval);
        m_owner_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec) {
                return;
            }
            m_owner_armed = false;
            m_owner_poll_due = true;
            kick();
        });
    }
    arm_check_timer();
}

void Service::kick() {
    if (busy() || m_stopping) {
        return;
    }
    if (m_pass_again || m_pass_due) {
        m_pass_timer.cancel();
        start_pass();
        return;
    }
    if (!events_on()) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    Batch batch;
    for (auto it = m_pending_checks.begin(); it != m_pending_checks.end();) {
        if (it->second.due <= now) {
            batch.checks.emplace(it->first, it->second.trigger);
            it = m_pending_checks.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = m_pending_scans.begin(); it != m_pending_scans.end();) {
        if (it->second <= now) {
            batch.scans.push_back(it->first);
            it = m_pending_scans.erase(it);
        } else {
            ++it;
        }
    }
    if (m_owner_poll_due) {
        m_owner_poll_due = false;
        for (const auto& worker : m_pids->unwatched()) {
            batch.checks.emplace(worker, "poll");
        }
    }
    if (m_tmux_poll_due) {
        m_tmux_poll_due = false;
        batch.session_waits = m_table.session_waits();
        batch.tmux_poll = !batch.session_waits.empty();
    }
    if (batch.checks.empty() && batch.scans.empty() && !batch.tmux_poll) {
        arm_event_timers();
        return;
    }
    if (!batch.scans.empty()) {
        batch.watch_depth = watch_depth();
    }
    start_batch(std::move(batch));
}

void Service::start_batch(Batch batch) {
    m_batch_running = true;
    m_pass_work.emplace(m_io.get_executor());
    PassOptions options = pass_options_of(m_config);
    options.cancel = &m_cancel;
    const bool watch = inotify_on();
    boost::asio::post(m_worker, [this, batch = std::move(batch), options = std::move(options),
                                 config = m_config, watch]() mutable {
        const auto started = std::chrono::steady_clock::now();
        BatchOutcome out;
        auto note_watch = [&out](AddWatch r, const std::string& error) {
            if (r == AddWatch::exhausted && out.watch != AddWatch::exhausted) {
                out.watch = r;
                out.watch_error = error;
            }
        };
        try {
            std::map<std::string, std::string> todo = std::move(batch.checks);
            std::optional<TmuxFacts> fresh;
            if (batch.tmux_poll) {
                fresh = m_backend.tmux(config);
                out.tmux = fresh;
                for (const auto& wait : batch.session_waits) {
                    const bool known = fresh->state != TmuxState::unknown;
                    if (known && (wait.tmux_was_unknown || !fresh->has(wait.session_id))) {
                        todo[wait.worker] = "tmux";
                    }
                }
            }
            for (const auto& path : batch.scans) {
                auto root = root_containing(options.roots, path);
                if (!root || !watch) {
                    continue;
                }
                ScanResult found =
                    scan_new_directory(*root, path, options.walk, batch.watch_depth, *m_dirs);
                ++out.scans;
                note_watch(found.watch, found.error);
                for (const auto& worker : found.workers) {
                    todo.emplace(worker, "inotify");
                }
            }
            for (const auto& [worker, trigger] : todo) {
                if (m_cancel.load()) {
                    break; // stopping: no removal starts now
                }
                const TmuxFacts* facts = trigger == "tmux" && fresh ? &*fresh : nullptr;
                WorkerCheck check = m_backend.check(worker, options, config, facts);
                if (watch && check.state == WorkerCheck::State::found) {
                    // A lock here: watch the way to it, so that its next change is seen.
                    std::string error;
                    note_watch(watch_way(check.root, check.worker, *m_dirs, &error), error);
                }
                out.checks.push_back({std::move(check), trigger});
            }
        } catch (const std::exception& e) {
            out.error = e.what();
        } catch (...) {
            out.error = "unknown exception";
        }
        out.elapsed_ms =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - started)
                                           .count());
        boost::asio::post(
            m_io, [this, out = std::move(out)]() mutable { on_batch_done(std::move(out)); });
    });
}

void Service::on_batch_done(BatchOutcome outcome) {
    m_batch_running = false;
    m_pass_work.reset();
    if (!outcome.error.empty()) {
        m_log.log(LogLevel::error, "check.failed", {{"error", outcome.error}});
    }
    std::size_t tmux_rechecks = 0;
    std::size_t removed = 0;
    std::set<std::string> triggers;
    for (const auto& c : outcome.checks) {
        if (events_on()) {
            m_table.apply(c.check);
            update_owner(c.check.worker);
            if (c.check.state == WorkerCheck::State::found &&
                c.check.record.action == LockAction::skipped_changed) {
                retry_later(c.check.worker);
            }
        }
        tmux_rechecks += c.trigger == "tmux" ? 1u : 0u;
        removed += c.check.state == WorkerCheck::State::found &&
                           c.check.record.action == LockAction::removed
                       ? 1u
                       : 0u;
        triggers.insert(c.trigger);
    }
    if (!outcome.checks.empty()) {
        // Removals are logged whatever happened meanwhile (a reload that turned events off).
        m_pass_log.log_checks(outcome.checks, m_table.tmux(), m_table.collisions(),
                              m_table.frozen_roots());
    }
    if (!outcome.checks.empty() || outcome.scans > 0) {
        m_log.log(LogLevel::debug, "check.completed",
                  {{"checks", std::to_string(outcome.checks.size())},
                   {"scans", std::to_string(outcome.scans)},
                   {"removed", std::to_string(removed)},
                   {"triggers", join_names(triggers)},
                   {"elapsed_ms", std::to_string(outcome.elapsed_ms)}});
    }
    if (outcome.tmux) {
        m_tmux_unknown = outcome.tmux->state == TmuxState::unknown;
        m_log.log(LogLevel::debug, "tmux.polled",
                  {{"tmux_state", std::string(to_string(outcome.tmux->state))},
                   {"rechecks", std::to_string(tmux_rechecks)}});
    }
    if (outcome.watch == AddWatch::exhausted && events_on() && !m_inotify_degraded) {
        m_inotify_degraded = true;
        degrade("inotify", outcome.watch_error,
                "a full pass every " + format_duration(m_config.interval));
        if (!m_pass_running) {
            schedule_next_pass(); // the period is shorter now
        }
    }
    if (m_after_checks) {
        m_after_checks(outcome.checks);
    }
    if (m_stopping) {
        finish_stop();
        return;
    }
    arm_event_timers();
    kick();
}

void Service::on_dir_events(const std::vector<WatchEvent>& events, bool overflow) {
    if (!events_on() || m_stopping) {
        return;
    }
    if (overflow) {
        m_log.log(LogLevel::warn, "events.overflow",
                  {{"reason", "the inotify queue overflowed: events were lost"}});
        request_full_pass("inotify queue overflow");
    }
    const std::string lock_name(k_lock_name);
    const std::string runtime_name(k_runtime_dir);
    const auto& prune = m_config.prune;
    for (const auto& ev : events) {
        const bool self = ev.name.empty();
        const bool gone_self = (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
        if (ev.kind == WatchKind::runtime) {
            const std::string worker = parent_path(ev.dir);
            if (self) {
                if (gone_self) {
                    request_check(worker, "inotify", k_debounce);
                    request_scan(worker); // watches the worker for a new .runtime
                }
            } else if (ev.name == lock_name) {
                if ((ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM)) != 0) {
                    request_check(worker, "inotify", k_debounce);
                } else if ((ev.mask & IN_CREATE) != 0) {
                    request_check(worker, "inotify", k_create_debounce);
                }
            }
            if (self && (ev.mask & IN_MOVE_SELF) != 0) {
                m_dirs->remove_under(ev.dir); // its path is wrong now
            }
            continue;
        }
        if (self) {
            if (gone_self) {
                const bool is_root = std::find(m_config.roots.begin(), m_config.roots.end(),
                                               ev.dir) != m_config.roots.end();
                if (is_root) {
                    request_full_pass("root " + ev.dir + " was removed or moved");
                } else {
                    for (const auto& worker : m_table.workers_under(ev.dir)) {
                        request_check(worker, "inotify", k_debounce);
                    }
                }
                if ((ev.mask & IN_MOVE_SELF) != 0) {
                    m_dirs->remove_under(ev.dir);
                }
            }
            continue;
        }
        if ((ev.mask & IN_ISDIR) == 0) {
            continue; // a file next to the workers: not ours
        }
        const std::string child = join_path(ev.dir, ev.name);
        // Inside a worker (its .runtime is watched) only a new .runtime matters: the rest is
        // its checkout, which full passes search.
        const bool in_worker =
            ev.name != runtime_name &&
            m_dirs->kind_of(join_path(ev.dir, runtime_name)) == WatchKind::runtime;
        if ((ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0 && !in_worker &&
            std::find(prune.begin(), prune.end(), ev.name) == prune.end()) {
            request_scan(child);
        }
        if ((ev.mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
            if (ev.name == runtime_name) {
                request_check(ev.dir, "inotify", k_debounce);
            }
            for (const auto& worker : m_table.workers_under(child)) {
                request_check(worker, "inotify", k_debounce);
            }
            if ((ev.mask & IN_MOVED_FROM) != 0) {
                m_dirs->remove_under(child);
            }
        }
    }
}

} // namespace agentlock::daemon
