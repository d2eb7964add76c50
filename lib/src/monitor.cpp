#include <agentlock/monitor.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <sys/inotify.h>

namespace agentlock {

namespace {

std::string parent_of(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0) {
        return "/";
    }
    return path.substr(0, slash);
}

std::string child_of(const std::string& dir, const std::string& name) {
    return dir.back() == '/' ? dir + name : dir + "/" + name;
}

} // namespace

std::string_view to_string(PassWhen when) {
    switch (when) {
    case PassWhen::now:
        return "now";
    case PassWhen::after_current:
        return "after-current";
    case PassWhen::merged:
        return "merged";
    }
    return "now";
}

std::vector<std::string> workers_to_recheck(const std::vector<SessionWait>& waits,
                                            const TmuxFacts& fresh, bool replaced) {
    std::vector<std::string> out;
    if (fresh.state == TmuxState::unknown) {
        return out; // tmux could not be asked: nothing is freed by it
    }
    for (const auto& wait : waits) {
        // A lock judged while tmux was unknown is judged again as soon as tmux answers; one
        // held by a session, once that session is gone or its panes' processes have exited, or
        // once another server answers (a listed id may be the new server's).
        if (replaced || wait.tmux_was_unknown || !fresh.has_live(wait.session_id)) {
            out.push_back(wait.worker);
        }
    }
    return out;
}

Monitor::Monitor(const MonitorClock& clock, MonitorSettings settings)
    : m_clock(clock), m_settings(std::move(settings)) {}

void Monitor::reconfigure(MonitorSettings settings) {
    m_settings = std::move(settings);
}

void Monitor::set_events(OwnerWatch* owners, DirWatchSet* dirs, TmuxWatch* tmux) {
    m_owners = owners;
    m_dirs = owners != nullptr ? dirs : nullptr;
    m_tmux_watch = owners != nullptr ? tmux : nullptr;
    m_inotify_exhausted = false;
    m_tmux_exits.clear();
    if (m_owners == nullptr) {
        m_checks.clear();
        m_scans.clear();
        m_tmux_poll_at.reset();
        m_owner_poll_at.reset();
    }
}

std::chrono::milliseconds Monitor::pass_period() const {
    if (!inotify_on()) {
        return m_settings.polling_pass_period;
    }
    if (!m_table.frozen_roots().empty()) {
        // A root that cannot be walked is not watched either: poll until it is back.
        return std::min(m_settings.interval, m_settings.events_pass_period);
    }
    return m_settings.events_pass_period;
}

std::optional<KnownOwner> Monitor::known_owner(std::string_view worker) const {
    const std::optional<Owner> owner = m_table.owner_of(worker);
    if (!owner || !owner->start_ticks) {
        return std::nullopt;
    }
    return KnownOwner{owner->pid, *owner->start_ticks};
}

PassWhen Monitor::request_pass() {
    const PassWhen when =
        !busy() ? PassWhen::now : (m_pass_wanted ? PassWhen::merged : PassWhen::after_current);
    m_pass_wanted = true;
    return when;
}

void Monitor::want_pass(std::string reason) {
    if (m_stopping) {
        return;
    }
    m_pass_requests.emplace_back(std::move(reason), request_pass());
}

void Monitor::request_check(const std::string& worker, const char* trigger,
                            std::chrono::milliseconds delay) {
    if (!events_on() || m_stopping) {
        return;
    }
    const MonoTime due = m_clock.now() + delay;
    auto [it, inserted] = m_checks.try_emplace(worker, Pending{due, trigger});
    if (!inserted && due < it->second.due) {
        it->second = Pending{due, trigger};
    }
}

void Monitor::request_scan(const std::string& path) {
    if (!inotify_on() || m_stopping) {
        return;
    }
    const MonoTime due = m_clock.now() + m_settings.timings.debounce;
    auto [it, inserted] = m_scans.try_emplace(path, due);
    if (!inserted && due < it->second) {
        it->second = due;
    }
}

void Monitor::owner_exited(const std::set<std::string>& workers) {
    for (const auto& worker : workers) {
        request_check(worker, "pidfd", std::chrono::milliseconds(0));
    }
}

void Monitor::tmux_exited(std::int64_t pid) {
    if (!events_on() || m_stopping) {
        return;
    }
    m_tmux_exits.try_emplace(pid, 0);
    m_tmux_poll_at = m_clock.now();
}

bool Monitor::tmux_watched() const {
    return m_tmux_watch != nullptr && m_tmux_watch->all_watched() && !m_table.has_unwatched_waits();
}

void Monitor::update_tmux_watch() {
    if (m_tmux_watch != nullptr) {
        m_tmux_watch->watch(m_table.tmux_pids());
    }
}

void Monitor::retry_tmux_exits(const std::vector<TmuxServerReport>& answers) {
    if (answers.empty() || m_tmux_exits.empty()) {
        return; // tmux was not asked (the poll set for the exits is still to come), or no exit
    }
    // What the ok answers still list as running: the servers and the live panes' processes.
    std::set<std::int64_t> listed;
    for (const auto& a : answers) {
        const TmuxFacts& f = a.facts;
        if (f.state != TmuxState::ok) {
            continue;
        }
        if (f.server_pid) {
            listed.insert(*f.server_pid);
        }
        for (const auto& [id, pane] : f.panes) {
            if (pane.pid && !pane.dead.value_or(false)) {
                listed.insert(*pane.pid);
            }
        }
    }
    const auto still_listed = [&listed](std::int64_t pid) { return listed.count(pid) != 0; };
    const auto& timings = m_settings.timings;
    std::optional<std::chrono::milliseconds> soonest;
    for (auto it = m_tmux_exits.begin(); it != m_tmux_exits.end();) {
        if (it->second < timings.tmux_retries && still_listed(it->first)) {
            const auto delay = timings.tmux_retry * (1 << std::min(it->second, 16u));
            soonest = soonest ? std::min(*soonest, delay) : delay;
            ++it->second;
            ++it;
        } else {
            it = m_tmux_exits.erase(it); // told, or given up: the slow poll and passes remain
        }
    }
    if (soonest) {
        m_tmux_poll_at = m_clock.now() + *soonest;
    }
}

void Monitor::update_owner(const std::string& worker) {
    if (m_owners != nullptr) {
        m_owners->set_owner(worker, m_table.owner_of(worker));
    }
}

void Monitor::arm_polls() {
    if (!events_on() || m_stopping) {
        return;
    }
    const MonoTime now = m_clock.now();
    if (m_table.has_session_waits()) {
        // Watched holds need tmux only when a process exits, and a slow poll for what ends no
        // process; the rest are polled, slowly while tmux cannot be reached.
        const auto& timings = m_settings.timings;
        const MonoTime at = now + (m_tmux_unknown   ? timings.tmux_backoff
                                   : tmux_watched() ? m_settings.interval
                                                    : timings.tmux_poll);
        if (!m_tmux_poll_at || at < *m_tmux_poll_at) {
            m_tmux_poll_at = at;
        }
    }
    // Without inotify, full passes every interval already cover the owners without a pidfd.
    if (!m_owner_poll_at && inotify_on() && !m_owners->unwatched().empty()) {
        m_owner_poll_at = now + m_settings.interval;
    }
}

std::optional<MonitorWork> Monitor::next_work() {
    if (busy() || m_stopping) {
        return std::nullopt;
    }
    const MonoTime now = m_clock.now();
    if (m_pass_wanted || (m_pass_started && now >= *m_pass_started + pass_period())) {
        m_pass_wanted = false;
        m_pass_started = now;
        m_running = Running::pass;
        return MonitorWork{MonitorWork::Kind::pass, {}};
    }
    if (!events_on()) {
        return std::nullopt;
    }
    arm_polls();
    RecheckBatch batch;
    for (auto it = m_checks.begin(); it != m_checks.end();) {
        if (it->second.due <= now) {
            batch.checks.emplace(it->first, it->second.trigger);
            it = m_checks.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = m_scans.begin(); it != m_scans.end();) {
        if (it->second <= now) {
            batch.scans.push_back(it->first);
            it = m_scans.erase(it);
        } else {
            ++it;
        }
    }
    if (m_owner_poll_at && *m_owner_poll_at <= now) {
        m_owner_poll_at.reset();
        for (const auto& worker : m_owners->unwatched()) {
            batch.checks.emplace(worker, "poll");
        }
    }
    if (m_tmux_poll_at && *m_tmux_poll_at <= now) {
        m_tmux_poll_at.reset();
        batch.session_waits = m_table.session_waits();
    }
    if (batch.checks.empty() && batch.scans.empty() && batch.session_waits.empty()) {
        return std::nullopt;
    }
    if (!batch.scans.empty()) {
        batch.deepest_worker = m_table.deepest_worker(m_settings.roots);
    }
    m_running = Running::recheck;
    return MonitorWork{MonitorWork::Kind::recheck, std::move(batch)};
}

std::optional<MonoTime> Monitor::next_wake() const {
    if (busy() || m_stopping) {
        return std::nullopt; // the running work's end comes first
    }
    std::optional<MonoTime> wake;
    auto consider = [&wake](MonoTime t) { wake = wake ? std::min(*wake, t) : t; };
    if (m_pass_wanted) {
        consider(m_clock.now());
    }
    if (m_pass_started) {
        consider(*m_pass_started + pass_period());
    }
    for (const auto& [worker, p] : m_checks) {
        consider(p.due);
    }
    for (const auto& [path, due] : m_scans) {
        consider(due);
    }
    if (m_tmux_poll_at) {
        consider(*m_tmux_poll_at);
    }
    if (m_owner_poll_at) {
        consider(*m_owner_poll_at);
    }
    return wake;
}

MonitorNews Monitor::pass_done(PassReport* report, bool watch_exhausted) {
    m_running = Running::nothing;
    MonitorNews news;
    if (report == nullptr || m_stopping || !events_on()) {
        return news;
    }
    for (const auto& s : report->summaries) {
        if (s.action == LockAction::skipped_changed) {
            // Left because it changed or was being acquired: an acquirer that dies or gives up
            // without touching the lock sends no event, so judge it again one interval later
            // rather than at the next full pass.
            request_check(s.worker.str(), "poll", m_settings.interval);
        }
    }
    m_table.replace(*report);
    // Owners of workers the table no longer knows, then the owner of every worker it knows.
    m_owners->forget_if(
        [this](const std::string& worker) { return m_table.find(worker) == nullptr; });
    m_table.for_each_worker([this](const std::string& worker) { update_owner(worker); });
    update_tmux_watch();
    retry_tmux_exits(report->tmux_servers);
    if (watch_exhausted && inotify_on()) {
        news.inotify_exhausted = true;
        m_inotify_exhausted = true; // its watches stay, nothing new is watched: passes poll
    }
    arm_polls();
    return news;
}

MonitorNews Monitor::batch_done(const std::vector<CheckOutcome>& checks,
                                const std::optional<TmuxFacts>& tmux, bool watch_exhausted,
                                const std::vector<TmuxServerReport>& answers) {
    m_running = Running::nothing;
    MonitorNews news;
    if (!events_on()) {
        return news;
    }
    for (const auto& c : checks) {
        m_table.apply(c.check);
        update_owner(c.check.worker);
        if (c.check.state == WorkerCheck::State::found &&
            c.check.record.action == LockAction::skipped_changed) {
            request_check(c.check.worker, "poll", m_settings.interval);
        }
    }
    if (tmux) {
        m_tmux_unknown = tmux->state == TmuxState::unknown;
    }
    for (const auto& answer : answers) {
        m_table.refresh_holds(answer.server, answer.facts);
    }
    update_tmux_watch();
    retry_tmux_exits(answers);
    if (watch_exhausted && inotify_on()) {
        news.inotify_exhausted = true;
        m_inotify_exhausted = true;
    }
    arm_polls();
    return news;
}

void Monitor::dir_events(const std::vector<WatchEvent>& events, bool overflow) {
    if (!events_on() || m_stopping) {
        return;
    }
    if (overflow) {
        want_pass("inotify queue overflow");
    }
    for (const auto& ev : events) {
        dir_event(ev);
    }
}

void Monitor::dir_event(const WatchEvent& ev) {
    const std::string lock_name(k_lock_name);
    const std::string runtime_name(k_runtime_dir);
    const auto& timings = m_settings.timings;
    const bool self = ev.name.empty();
    const bool gone_self = (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
    const bool moved_self = self && (ev.mask & IN_MOVE_SELF) != 0;
    if (ev.kind == WatchKind::runtime) {
        const std::string worker = parent_of(ev.dir);
        if (self) {
            if (gone_self) {
                request_check(worker, "inotify", timings.debounce);
                request_scan(worker); // watches the worker for a new .runtime
            }
        } else if (ev.name == lock_name) {
            if ((ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM)) != 0) {
                request_check(worker, "inotify", timings.debounce);
            } else if ((ev.mask & IN_CREATE) != 0) {
                request_check(worker, "inotify", timings.create_debounce);
            }
        }
        if (moved_self && m_dirs != nullptr) {
            m_dirs->remove_under(ev.dir); // its path is wrong now
        }
        return;
    }
    if (self) {
        if (gone_self) {
            const auto& roots = m_settings.roots;
            if (std::find(roots.begin(), roots.end(), ev.dir) != roots.end()) {
                want_pass("root " + ev.dir + " was removed or moved");
            } else {
                for (const auto& worker : m_table.workers_under(ev.dir)) {
                    request_check(worker, "inotify", timings.debounce);
                }
            }
            if (moved_self && m_dirs != nullptr) {
                m_dirs->remove_under(ev.dir);
            }
        }
        return;
    }
    if ((ev.mask & IN_ISDIR) == 0) {
        return; // a file next to the workers: not ours
    }
    const std::string child = child_of(ev.dir, ev.name);
    // Inside a worker (its .runtime is watched) only a new .runtime matters: the rest is its
    // checkout, which full passes search.
    const bool in_worker = ev.name != runtime_name && m_dirs != nullptr &&
                           m_dirs->kind_of(child_of(ev.dir, runtime_name)) == WatchKind::runtime;
    if ((ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0 && !in_worker &&
        !is_pruned(m_settings.scope, ev.name)) {
        request_scan(child);
    }
    if ((ev.mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
        if (ev.name == runtime_name) {
            request_check(ev.dir, "inotify", timings.debounce);
        }
        for (const auto& worker : m_table.workers_under(child)) {
            request_check(worker, "inotify", timings.debounce);
        }
        if ((ev.mask & IN_MOVED_FROM) != 0 && m_dirs != nullptr) {
            m_dirs->remove_under(child);
        }
    }
}

} // namespace agentlock
