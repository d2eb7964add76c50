#include <agentlock/pass.hpp>

#include <agentlock/fd.hpp>
#include <agentlock/findings.hpp>
#include <agentlock/scope.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

namespace agentlock {

std::string_view to_string(LockAction action) {
    switch (action) {
    case LockAction::kept:
        return "kept";
    case LockAction::removed:
        return "removed";
    case LockAction::would_remove:
        return "would-remove";
    case LockAction::skipped_changed:
        return "skipped-changed";
    }
    return "kept";
}

namespace {

bool cancelled(const PassOptions& options) {
    return options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed);
}

bool is_local(const LockInfo& info, const HostFacts& host) {
    return info.hostname.empty() || info.hostname == host.hostname;
}

// Judges one lock found by the walk (or reached by check_worker) and, when it is stale, hands it
// to the reaper. With `tmux_facts` null, tmux is asked once, and only for a local lock that
// records a session (check_worker: most re-checks concern locks that record none).
class LockHandler {
public:
    LockHandler(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                ServerRef server, const TmuxFacts* tmux_facts, const HostFacts& host)
        : m_options(options), m_processes(processes), m_tmux(tmux), m_server(std::move(server)),
          m_tmux_facts(tmux_facts), m_host(host) {
        m_not_asked.detail = "not asked: no session to look up";
    }

    // A fresh answer was given (a re-check freed by it): see absence_stays_true.
    void confirm_with_given() { m_confirm_with_given = m_tmux_facts != nullptr; }

    // The answer the configured tmux server gave when it was asked lazily.
    const std::optional<TmuxFacts>& asked() const { return m_asked; }

    // The lock at `site` as judged and handled; nullopt when it vanished before it was opened.
    std::optional<LockRecord> handle(const LockSite& site) {
        LockRecord rec;
        rec.worker = site.worker;
        rec.lock_path = site.lock_path;
        LockRead read = read_lock_at(site.runtime_fd, site.lock_path);
        switch (read.state) {
        case LockRead::State::absent:
            return std::nullopt; // removed between the directory listing and the open
        case LockRead::State::io_error:
            rec.judgement = {Verdict::unknown, read.message};
            return rec;
        case LockRead::State::invalid:
            rec.judgement = {Verdict::invalid, read.message};
            rec.content = std::move(read.bytes);
            return rec;
        case LockRead::State::ok:
            break;
        }
        rec.info = *read.info;
        rec.content = read.bytes;
        rec.judgement = judge(site.worker, *rec.info, &rec.process, facts_for(*rec.info), false);
        if (removable()(rec.judgement.verdict) && !cancelled(m_options)) {
            reap(site, rec);
        }
        if (rec.action != LockAction::removed) {
            rec.hold = hold_for(*rec.info, rec.judgement.verdict);
        }
        if (rec.judgement.verdict == Verdict::live) {
            // Nothing reports a live lock's bytes; at fleet scale they are most of the report.
            rec.content.clear();
            rec.content.shrink_to_fit();
        }
        return rec;
    }

private:
    const TmuxFacts& facts_for(const LockInfo& info) {
        if (info.session_id.empty() || !is_local(info, m_host)) {
            return m_not_asked; // judge_lock does not look at tmux for these
        }
        const TmuxFacts& configured = configured_facts();
        if (!needs_own_server(info, configured)) {
            return configured;
        }
        auto it = m_recorded.find(*info.tmux_socket);
        if (it == m_recorded.end()) {
            it = m_recorded.emplace(*info.tmux_socket, ask_own_server(info)).first;
        }
        return it->second;
    }

    // What a kept lock waits on when its session keeps it, or when its server could not be
    // asked: that server, and the processes whose exit may end the hold.
    std::optional<TmuxHold> hold_for(const LockInfo& info, Verdict verdict) {
        if (info.session_id.empty() || !is_local(info, m_host)) {
            return std::nullopt;
        }
        const TmuxFacts& facts = facts_for(info);
        if (verdict != Verdict::held_by_session &&
            (verdict != Verdict::unknown || facts.state != TmuxState::unknown)) {
            return std::nullopt;
        }
        TmuxHold hold;
        if (info.tmux_socket && m_options.ask_tmux_server &&
            facts.socket_path == *info.tmux_socket) {
            hold.server.server.socket_path = *info.tmux_socket; // the server the lock records
        } else {
            hold.server = m_server;
        }
        hold.pids = tmux_hold_pids(facts, info.session_id);
        return hold;
    }

    const TmuxFacts& configured_facts() {
        if (m_tmux_facts != nullptr) {
            return *m_tmux_facts;
        }
        if (!m_asked) {
            m_asked = m_tmux.query();
        }
        return *m_asked;
    }

    // A lock that records its agent's tmux server is judged against that server, unless the
    // configured server's answer is that server's already (same PID).
    bool needs_own_server(const LockInfo& info, const TmuxFacts& configured) const {
        if (!info.tmux_socket || !m_options.ask_tmux_server) {
            return false;
        }
        if (info.tmux_server_pid && configured.state == TmuxState::ok && configured.server_pid) {
            return *configured.server_pid != *info.tmux_server_pid;
        }
        return configured.socket_path != *info.tmux_socket;
    }

    TmuxFacts ask_own_server(const LockInfo& info) const {
        TmuxServer server;
        server.socket_path = *info.tmux_socket;
        return m_options.ask_tmux_server(server);
    }

    // What judging `info` needs of tmux beyond the listing: the slack, and whether the server the
    // lock records still runs.
    TmuxEvidence evidence_for(const LockInfo& info) {
        TmuxEvidence evidence;
        evidence.created_slack = m_options.tmux_created_slack;
        if (info.tmux_server_pid && !info.session_id.empty() && is_local(info, m_host)) {
            evidence.recorded_server = m_processes.probe(*info.tmux_server_pid);
        }
        return evidence;
    }

    // Whether `facts`, which show no server, or an ok server without the session or pane `info`
    // records, say so for `info` still, as well as a new query would: whatever tmux creates
    // after the answer is created after it, tmux never reuses a session or pane id within a
    // server, and the judge holds that a server or session created later than acquired_at plus
    // the slack is not the holder. That takes an answer begun at least the slack (and the
    // second tmux truncates its times to) after acquired_at, and no seen clock step since the
    // lock was written. Then a burst of removals (a session's panes, a server's locks) needs no
    // query each to confirm them.
    bool absence_stays_true(const TmuxFacts& facts, const LockInfo& info) const {
        if (!facts.asked_at || m_options.clock.may_predate_a_step(info.acquired_at) ||
            *facts.asked_at <
                info.acquired_at + m_options.tmux_created_slack + std::chrono::seconds(1)) {
            return false;
        }
        if (facts.state == TmuxState::no_server) {
            return true;
        }
        return facts.state == TmuxState::ok && facts.server_started && !facts.has(info.session_id);
    }

    // The boot time, read once per pass: it moves only when the wall clock is stepped, and the
    // judge does not compare it with acquired_at after a step it was told of.
    std::optional<Timestamp> boot_time() {
        if (!m_boot_time_read) {
            m_boot_time = m_processes.pid_table().boot_time;
            m_boot_time_read = true;
        }
        return m_boot_time;
    }

    bool (*removable() const)(Verdict) {
        return m_options.remove_host_gone ? is_removable_with_host_gone : is_removable;
    }

    Judgement judge(const std::string& worker, const LockInfo& info, ProcessFacts* evidence,
                    const TmuxFacts& tmux, bool confirm) {
        ProcessFacts process;
        ReuseFacts reuse;
        if (is_local(info, m_host)) {
            process = m_processes.probe(info.pid);
            if (needs_pid_table(info, process)) {
                reuse.pid_table = m_processes.pid_table(); // after the probe, as the rule needs
            }
            if (!reuse.pid_table.boot_time && needs_boot_time(info, m_host)) {
                reuse.pid_table.boot_time = boot_time();
            }
        } else {
            process.detail = "not probed: the lock belongs to another host";
        }
        if (evidence != nullptr) {
            *evidence = process;
        }
        reuse.clock = m_options.clock;
        if (m_options.known_owner) {
            reuse.known_owner = m_options.known_owner(worker);
        }
        Judgement judgement = judge_lock(info, process, tmux, m_host, reuse, evidence_for(info));
        if (judgement.verdict == Verdict::foreign && m_options.judge_foreign) {
            judgement = m_options.judge_foreign(info, judgement, confirm);
        }
        return judgement;
    }

    void reap(const LockSite& site, LockRecord& rec) {
        // The re-check asks tmux again when a session is recorded: it may have appeared since
        // the pass's query, and a live session's lock must never go.
        auto rejudge = [this, &site](const LockInfo& again) {
            if (again.session_id.empty()) {
                return judge(site.worker, again, nullptr, facts_for(again), true);
            }
            if (needs_own_server(again, configured_facts())) {
                return judge(site.worker, again, nullptr, ask_own_server(again), true);
            }
            if (m_confirm_with_given && absence_stays_true(*m_tmux_facts, again)) {
                return judge(site.worker, again, nullptr, *m_tmux_facts, true);
            }
            return judge(site.worker, again, nullptr, m_tmux.query(), true);
        };
        RemovalResult removal = remove_if_unchanged(site.runtime_fd, site.lock_path, rec.content,
                                                    rejudge, m_options.dry_run, removable());
        rec.detail = removal.detail;
        switch (removal.action) {
        case RemovalAction::removed:
            rec.action = LockAction::removed;
            rec.content = std::move(removal.content);
            break;
        case RemovalAction::would_remove:
            rec.action = LockAction::would_remove;
            break;
        case RemovalAction::skipped_changed:
            rec.action = LockAction::skipped_changed;
            break;
        case RemovalAction::failed:
            rec.action = LockAction::kept;
            break;
        }
    }

    const PassOptions& m_options;
    ProcessProbe& m_processes;
    TmuxProbe& m_tmux;
    ServerRef m_server; // the one m_tmux asks: the root's
    const TmuxFacts* m_tmux_facts;
    /// m_tmux_facts is a fresh answer given for this lock (check_worker): it may confirm a
    /// removal when absence_stays_true.
    bool m_confirm_with_given = false;
    std::optional<TmuxFacts> m_asked;
    std::map<std::string, TmuxFacts> m_recorded; // the servers locks record, by socket path
    std::optional<Timestamp> m_boot_time;
    bool m_boot_time_read = false;
    TmuxFacts m_not_asked;
    const HostFacts& m_host;
};

// Keeps what a pass reports of each lock: its summary and counts in the report, its record in
// the sink, or in the report when there is none.
void keep(PassReport& report, PassSink* sink, LockRecord&& rec, TmuxState tmux_state) {
    report.summaries.push_back(summarize(rec, tmux_state));
    if (rec.hold) {
        report.holds.insert_or_assign(rec.worker, *rec.hold);
    }
    report.stats.removed += rec.action == LockAction::removed ? 1u : 0u;
    report.stats.would_remove += rec.action == LockAction::would_remove ? 1u : 0u;
    if (sink != nullptr) {
        sink->on_lock(std::move(rec));
    } else {
        report.locks.push_back(std::move(rec));
    }
}

bool summary_before(const LockSummary& a, const LockSummary& b) {
    return a.worker < b.worker;
}

// Sorts the summaries and finds the collisions among the locks still there.
void finish_report(PassReport& report, bool per_lock_collisions) {
    std::sort(report.summaries.begin(), report.summaries.end(), summary_before);
    std::vector<JudgedLock> judged;
    for (const auto& s : report.summaries) {
        if (s.parsed && s.action != LockAction::removed &&
            (per_lock_collisions || claims_identity(s.verdict))) {
            judged.push_back({s.worker.view(), s.pid, s.session_id.view(), s.verdict});
        }
    }
    report.collisions = detect_collisions(judged, per_lock_collisions);
}

// The answer of a server that could not be named, given as a probe: unknown, saying why.
class UnresolvedTmuxProbe final : public TmuxProbe {
public:
    explicit UnresolvedTmuxProbe(const ServerRef& server)
        : m_facts(unresolved_tmux_facts(server)) {}
    TmuxFacts query() override { return m_facts; }

private:
    TmuxFacts m_facts;
};

ServerRef server_of_root(const PassOptions& options, std::size_t root) {
    return root < options.root_servers.size() ? options.root_servers[root] : ServerRef{};
}

// Each distinct server of the roots, asked once, in the order of their first roots; with no
// roots, tmux's default server. `server_of` gets each root's index in the result.
std::vector<TmuxServerReport> ask_servers(const PassOptions& options, TmuxProbes& probes,
                                          std::vector<std::size_t>& server_of) {
    std::vector<TmuxServerReport> servers;
    auto index_of = [&servers](const ServerRef& ref) {
        for (std::size_t i = 0; i < servers.size(); ++i) {
            if (servers[i].server == ref) {
                return i;
            }
        }
        servers.push_back({ref, {}, {}});
        return servers.size() - 1;
    };
    for (std::size_t r = 0; r < options.roots.size(); ++r) {
        const std::size_t i = index_of(server_of_root(options, r));
        servers[i].roots.push_back(options.roots[r]);
        server_of.push_back(i);
    }
    if (servers.empty()) {
        index_of(ServerRef{});
    }
    for (auto& s : servers) {
        s.facts = s.server.unresolved.empty() ? probes.probe(s.server.server).query()
                                              : unresolved_tmux_facts(s.server);
    }
    return servers;
}

PassReport run_pass_into(const PassOptions& options, ProcessProbe& processes, TmuxProbes& probes,
                         const HostFacts& host, PassSink* sink) {
    const auto started = std::chrono::steady_clock::now();
    PassReport report;
    std::vector<std::size_t> server_of_roots;
    report.tmux_servers = ask_servers(options, probes, server_of_roots);
    report.tmux = report.tmux_servers.front().facts;
    if (sink != nullptr) {
        sink->on_tmux(report.tmux_servers);
    }

    for (std::size_t r = 0; r < options.roots.size(); ++r) {
        const std::string& root = options.roots[r];
        const std::size_t server = server_of_roots[r];
        const TmuxServerReport& asked = report.tmux_servers[server];
        UnresolvedTmuxProbe unresolved(asked.server);
        TmuxProbe& tmux =
            asked.server.unresolved.empty() ? probes.probe(asked.server.server) : unresolved;
        LockHandler handler(options, processes, tmux, asked.server, &asked.facts, host);
        RootReport root_report;
        root_report.path = root;
        if (cancelled(options)) {
            root_report.ok = false;
            root_report.error = "pass cancelled";
            report.roots.push_back(std::move(root_report));
            continue;
        }
        WalkOptions walk = options.walk;
        walk.cancel = options.cancel; // SIGTERM does not wait for the rest of a big tree
        auto walked = walk_locks(root, walk, [&](const LockSite& site) {
            if (auto rec = handler.handle(site)) {
                rec->tmux_server = server;
                keep(report, sink, std::move(*rec), asked.facts.state);
            }
        });
        if (!walked) {
            root_report.ok = false;
            root_report.error = walked.error().message;
        } else {
            if (walked->cancelled) {
                // Partly walked: what it did not reach must not look gone.
                root_report.ok = false;
                root_report.error = "pass cancelled";
            }
            report.stats.dirs += walked->dirs;
            report.stats.unreadable_dirs += walked->unreadable_dirs;
            for (auto& e : walked->errors) {
                report.walk_errors.push_back(std::move(e));
            }
            report.stats.symlinked_runtimes += walked->symlinked_runtimes;
            for (auto& e : walked->skipped) {
                report.skipped_runtimes.push_back(std::move(e));
            }
        }
        report.roots.push_back(std::move(root_report));
    }

    std::sort(report.locks.begin(), report.locks.end(),
              [](const LockRecord& a, const LockRecord& b) { return a.lock_path < b.lock_path; });
    finish_report(report, options.per_lock_collisions);
    report.stats.locks = report.summaries.size();
    report.stats.elapsed_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count());
    return report;
}

} // namespace

LockSummary summarize(const LockRecord& record, TmuxState tmux_state) {
    LockSummary s;
    s.worker = PathRef(record.worker);
    if (record.info) {
        s.parsed = true;
        s.pid = record.info->pid;
        s.session_id = PathRef(record.info->session_id);
    }
    s.start_ticks = record.process.start_ticks;
    s.verdict = record.judgement.verdict;
    s.action = record.action;
    s.owner = record.process.state;
    s.tmux_state = tmux_state;
    return s;
}

void summarize_locks(PassReport& report) {
    report.summaries.clear();
    report.holds.clear();
    for (const auto& rec : report.locks) {
        report.summaries.push_back(summarize(rec, tmux_facts_of(report, rec).state));
        if (rec.hold && rec.action != LockAction::removed) {
            report.holds.insert_or_assign(rec.worker, *rec.hold);
        }
    }
    std::sort(report.summaries.begin(), report.summaries.end(), summary_before);
}

const LockSummary* find_summary(const std::deque<LockSummary>& summaries, std::string_view worker) {
    auto it = std::lower_bound(
        summaries.begin(), summaries.end(), worker,
        [](const LockSummary& s, std::string_view w) { return s.worker.view() < w; });
    return it != summaries.end() && it->worker == worker ? &*it : nullptr;
}

PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbes& tmux,
                    const HostFacts& host) {
    return run_pass_into(options, processes, tmux, host, nullptr);
}

PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbes& tmux,
                    const HostFacts& host, PassSink& sink) {
    return run_pass_into(options, processes, tmux, host, &sink);
}

PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                    const HostFacts& host) {
    OneTmuxProbe probes(tmux);
    return run_pass_into(options, processes, probes, host, nullptr);
}

PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                    const HostFacts& host, PassSink& sink) {
    OneTmuxProbe probes(tmux);
    return run_pass_into(options, processes, probes, host, &sink);
}

std::vector<TmuxServerReport> tmux_servers_of(const PassReport& report) {
    if (!report.tmux_servers.empty()) {
        return report.tmux_servers;
    }
    TmuxServerReport one;
    for (const auto& root : report.roots) {
        one.roots.push_back(root.path);
    }
    one.facts = report.tmux;
    return {std::move(one)};
}

const TmuxFacts& tmux_facts_of(const PassReport& report, const LockRecord& record) {
    return record.tmux_server < report.tmux_servers.size()
               ? report.tmux_servers[record.tmux_server].facts
               : report.tmux;
}

ServerRef tmux_server_of_path(const PassOptions& options, std::string_view path) {
    const std::string* root = root_containing(options.roots, path);
    if (root == nullptr) {
        return ServerRef{};
    }
    return server_of_root(options, static_cast<std::size_t>(root - options.roots.data()));
}

std::string_view to_string(WorkerCheck::State state) {
    switch (state) {
    case WorkerCheck::State::found:
        return "found";
    case WorkerCheck::State::absent:
        return "absent";
    case WorkerCheck::State::outside:
        return "outside";
    case WorkerCheck::State::unreachable:
        return "unreachable";
    }
    return "unreachable";
}

namespace {

constexpr int k_dir_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

WorkerCheck ended(WorkerCheck check, WorkerCheck::State state, std::string error = {}) {
    check.state = state;
    check.error = std::move(error);
    return check;
}

} // namespace

WorkerCheck check_worker(const std::string& worker, const PassOptions& options,
                         ProcessProbe& processes, TmuxProbe& tmux, const HostFacts& host,
                         const TmuxFacts* fresh_tmux) {
    OneTmuxProbe probes(tmux);
    return check_worker(worker, options, processes, probes, host, fresh_tmux);
}

WorkerCheck check_worker(const std::string& worker_path, const PassOptions& options,
                         ProcessProbe& processes, TmuxProbes& probes, const HostFacts& host,
                         const TmuxFacts* fresh_tmux) {
    std::string worker = worker_path;
    while (worker.size() > 1 && worker.back() == '/') {
        worker.pop_back();
    }
    WorkerCheck check;
    check.worker = worker;
    check.lock_path = lock_path_for(worker);
    using State = WorkerCheck::State;

    const std::string* root = root_containing(options.roots, worker);
    if (root == nullptr) {
        return ended(std::move(check), State::outside, worker + " is under no configured root");
    }
    check.root = *root;
    check.tmux_server =
        server_of_root(options, static_cast<std::size_t>(root - options.roots.data()));
    auto names = names_below(*root, worker);
    if (!names) {
        return ended(std::move(check), State::outside, worker + " is not a plain path");
    }
    if (options.walk.max_depth && names->size() > *options.walk.max_depth) {
        return ended(std::move(check), State::outside, worker + " is deeper than max_depth");
    }
    names->emplace_back(k_runtime_dir);

    // The root itself is opened as the walk opens it (a configured root may be a symlink);
    // everything below it with O_NOFOLLOW, one name at a time, as the walk would descend.
    Fd dir(::open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        return ended(std::move(check), State::unreachable, io_error("open", *root, errno).message);
    }
    struct stat st {};
    if (::fstat(dir.get(), &st) != 0) {
        return ended(std::move(check), State::unreachable, io_error("stat", *root, errno).message);
    }
    const MountPlace root_place{st.st_dev,
                                options.walk.one_file_system ? mount_id_of(dir.get()) : 0};
    std::string path = *root;
    for (const auto& name : *names) {
        path += path.back() == '/' ? "" : "/";
        path += name;
        if (is_pruned(options.walk, name)) {
            return ended(std::move(check), State::outside, path + " is pruned");
        }
        Fd next(::openat(dir.get(), name.c_str(), k_dir_flags));
        if (!next) {
            const int err = errno;
            if (err == ENOENT || err == ELOOP || err == ENOTDIR) {
                return ended(std::move(check), State::absent); // as the walk: nothing there
            }
            return ended(std::move(check), State::unreachable, io_error("open", path, err).message);
        }
        if (::fstat(next.get(), &st) != 0) {
            return ended(std::move(check), State::unreachable,
                         io_error("stat", path, errno).message);
        }
        if (options.walk.one_file_system &&
            root_place.differs(st.st_dev, root_place.mount != 0 ? mount_id_of(next.get()) : 0)) {
            return ended(std::move(check), State::outside,
                         path + " is on another file system or mount");
        }
        dir = std::move(next);
    }

    UnresolvedTmuxProbe unresolved(check.tmux_server);
    TmuxProbe& tmux =
        check.tmux_server.unresolved.empty() ? probes.probe(check.tmux_server.server) : unresolved;
    LockHandler handler(options, processes, tmux, check.tmux_server, fresh_tmux, host);
    handler.confirm_with_given();
    LockSite site;
    site.worker = worker;
    site.lock_path = check.lock_path;
    site.runtime_fd = dir.get();
    std::optional<LockRecord> rec = handler.handle(site);
    if (fresh_tmux != nullptr) {
        check.tmux = *fresh_tmux;
    } else if (handler.asked()) {
        check.tmux = handler.asked();
    }
    if (!rec) {
        return ended(std::move(check), State::absent);
    }
    check.record = std::move(*rec);
    check.state = State::found;
    return check;
}

} // namespace agentlock
