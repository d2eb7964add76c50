#include "pass_log.hpp"

#include <agentlock/config.hpp>

#include <algorithm>
#include <sstream>

namespace agentlock::daemon {

namespace {

std::size_t unavailable_count(const PassReport& report) {
    return static_cast<std::size_t>(std::count_if(report.roots.begin(), report.roots.end(),
                                                  [](const RootReport& r) { return !r.ok; }));
}

// The worker of a lock path (lock_path_for's inverse).
std::string_view worker_of(std::string_view lock_path) {
    const std::string suffix = "/" + std::string(k_runtime_dir) + "/" + std::string(k_lock_name);
    if (lock_path.size() >= suffix.size() &&
        lock_path.compare(lock_path.size() - suffix.size(), suffix.size(), suffix) == 0) {
        lock_path.remove_suffix(suffix.size());
    }
    return lock_path;
}

// What a lock whose finding went away is now: "removed", "gone" (someone else removed it), or its
// current verdict ("live", "stale", ...).
std::string lock_now(const std::deque<LockSummary>& summaries, const std::string& lock_path) {
    const LockSummary* s = find_summary(summaries, worker_of(lock_path));
    if (s == nullptr) {
        return "gone";
    }
    return s->action == LockAction::removed ? "removed" : std::string(to_string(s->verdict));
}

// A resolved lock finding keeps no fields of its own: it says what became of the lock, and where.
Fields resolved_lock_fields(const FindingChange& change, const std::string& now) {
    return {{"state", "resolved"},
            {"now", now},
            {"lock_path", change.finding.key},
            {"worker", std::string(worker_of(change.finding.key))}};
}

// The lock fields of a removal or a skipped removal, with what triggered the judgement after
// `action`.
Fields lock_event_fields(const LockRecord& rec, const TmuxFacts& tmux, bool with_content,
                         const std::string& trigger) {
    Fields fields = lock_record_fields(rec, tmux, with_content);
    auto action = std::find_if(fields.begin(), fields.end(),
                               [](const auto& f) { return f.first == "action"; });
    fields.insert(action == fields.end() ? fields.end() : action + 1, {"trigger", trigger});
    return fields;
}

bool is_lock_event(const Finding& f) {
    return f.event.rfind("lock.", 0) == 0;
}

bool is_collision_event(const Finding& f) {
    return f.event.rfind("collision.", 0) == 0;
}

} // namespace

std::string tmux_summary(const PassReport& report) {
    const auto servers = tmux_servers_of(report);
    if (servers.size() == 1) {
        return std::string(to_string(servers.front().facts.state));
    }
    std::size_t count[3] = {0, 0, 0};
    for (const auto& s : servers) {
        ++count[static_cast<int>(s.facts.state)];
    }
    std::string out;
    for (const TmuxState state : {TmuxState::ok, TmuxState::no_server, TmuxState::unknown}) {
        if (count[static_cast<int>(state)] > 0) {
            out += out.empty() ? "" : ",";
            out += std::to_string(count[static_cast<int>(state)]) + " " +
                   std::string(to_string(state));
        }
    }
    return out;
}

LogLevel finding_level(const FindingChange& change) {
    if (change.state == FindingState::resolved) {
        return LogLevel::info;
    }
    const std::string& e = change.finding.event;
    if (e == "lock.held_by_session" || e == "lock.foreign" || e == "lock.would_remove") {
        return LogLevel::info;
    }
    if (e == "lock.remove_failed") {
        return LogLevel::error;
    }
    return LogLevel::warn;
}

Fields finding_event_fields(const FindingChange& change) {
    Fields fields;
    fields.reserve(change.finding.fields.size() + 1);
    fields.emplace_back("state", std::string(to_string(change.state)));
    fields.insert(fields.end(), change.finding.fields.begin(), change.finding.fields.end());
    return fields;
}

std::size_t duplicate_claims(const PassReport& report) {
    return static_cast<std::size_t>(
        std::count_if(report.collisions.begin(), report.collisions.end(), [](const Collision& c) {
            return c.kind == CollisionKind::duplicate_session ||
                   c.kind == CollisionKind::duplicate_pid;
        }));
}

PassLogger::PassLogger(EventLog& log, std::chrono::steady_clock::duration summary_every)
    : m_log(log), m_summary_every(summary_every) {}

void PassLogger::begin_pass() {
    m_findings.begin();
}

void PassLogger::log_lock(const LockRecord& rec, const TmuxFacts& tmux) {
    if (rec.action == LockAction::removed) {
        m_log.log(LogLevel::info, "lock.removed", lock_event_fields(rec, tmux, true, "pass"));
    } else if (rec.action == LockAction::skipped_changed) {
        m_log.log(LogLevel::debug, "lock.skipped_changed",
                  lock_event_fields(rec, tmux, false, "pass"));
    }
    if (auto finding = lock_finding(rec, tmux)) {
        if (auto state = m_findings.observe(*finding)) {
            const FindingChange change{*state, std::move(*finding)};
            m_log.log(finding_level(change), change.event(), finding_event_fields(change));
        }
    }
}

void PassLogger::end_pass(const PassReport& report, bool cancelled,
                          std::chrono::steady_clock::time_point now) {
    ++m_passes;
    if (!cancelled) {
        for (auto& f : pass_findings(report)) {
            if (auto state = m_findings.observe(f)) {
                const FindingChange change{*state, std::move(f)};
                m_log.log(finding_level(change), change.event(), finding_event_fields(change));
            }
        }
        for (const auto& change : m_findings.sweep(unavailable_roots(report))) {
            Fields fields = finding_event_fields(change);
            if (change.event() == "tmux.recovered") {
                // Say what the server answers now (when it is still asked), not the failure.
                fields = {{"state", "resolved"}};
                fields.insert(fields.end(), change.finding.fields.begin(),
                              change.finding.fields.end());
                for (const auto& server : tmux_servers_of(report)) {
                    if (tmux_finding_key(server.server) == change.finding.key) {
                        fields.emplace_back("tmux_state",
                                            std::string(to_string(server.facts.state)));
                        if (!server.facts.detail.empty()) {
                            fields.emplace_back("tmux_detail", server.facts.detail);
                        }
                    }
                }
            } else if (is_lock_event(change.finding)) {
                fields =
                    resolved_lock_fields(change, lock_now(report.summaries, change.finding.key));
            }
            m_log.log(finding_level(change), change.event(), fields);
        }
    }

    const bool summary_due = !m_last_summary || now - *m_last_summary >= m_summary_every;
    const LogLevel level = summary_due ? LogLevel::info : LogLevel::debug;
    if (summary_due) {
        m_last_summary = now;
    }
    Fields fields = {
        {"pass", std::to_string(m_passes)},
        {"root_count", std::to_string(report.roots.size())},
        {"roots_unavailable", std::to_string(unavailable_count(report))},
        {"dirs", std::to_string(report.stats.dirs)},
        {"locks", std::to_string(report.stats.locks)},
        {"removed", std::to_string(report.stats.removed)},
        {"would_remove", std::to_string(report.stats.would_remove)},
        {"unreadable_dirs", std::to_string(report.stats.unreadable_dirs)},
        {"symlinked_runtimes", std::to_string(report.stats.symlinked_runtimes)},
        {"collisions", std::to_string(duplicate_claims(report))},
        {"tmux", tmux_summary(report)},
        {"open_findings", std::to_string(m_findings.open_count())},
        {"elapsed_ms", std::to_string(report.stats.elapsed_ms)},
    };
    if (cancelled) {
        fields.emplace_back("cancelled", "true");
    }
    m_log.log(level, "pass.completed", fields);
}

void PassLogger::log_pass(const PassReport& report, bool cancelled,
                          std::chrono::steady_clock::time_point now) {
    begin_pass();
    for (const auto& rec : report.locks) {
        log_lock(rec, tmux_facts_of(report, rec));
    }
    if (!report.summaries.empty() || report.locks.empty()) {
        end_pass(report, cancelled, now);
        return;
    }
    // A report assembled from records alone: what end_pass reads of them, as a pass makes it.
    PassReport whole = report;
    summarize_locks(whole);
    whole.stats.would_remove = static_cast<std::uint64_t>(
        std::count_if(whole.summaries.begin(), whole.summaries.end(),
                      [](const LockSummary& s) { return s.action == LockAction::would_remove; }));
    end_pass(whole, cancelled, now);
}

void PassLogger::log_checks(const std::vector<CheckOutcome>& checks, const TmuxFacts& known_tmux,
                            const std::vector<Collision>& collisions,
                            const std::vector<std::string>& frozen_roots) {
    for (const auto& [check, trigger] : checks) {
        if (check.state == WorkerCheck::State::unreachable) {
            continue; // nothing learnt: its findings stay as they are
        }
        const TmuxFacts& tmux = check.tmux ? *check.tmux : known_tmux;
        const bool found = check.state == WorkerCheck::State::found;
        const LockRecord& rec = check.record;
        if (found && rec.action == LockAction::removed) {
            m_log.log(LogLevel::info, "lock.removed", lock_event_fields(rec, tmux, true, trigger));
        } else if (found && rec.action == LockAction::skipped_changed) {
            m_log.log(LogLevel::debug, "lock.skipped_changed",
                      lock_event_fields(rec, tmux, false, trigger));
        }
        std::vector<Finding> current;
        if (found) {
            if (auto f = lock_finding(rec, tmux)) {
                current.push_back(std::move(*f));
            }
        }
        const std::string now = !found ? "gone"
                                       : (rec.action == LockAction::removed
                                              ? "removed"
                                              : std::string(to_string(rec.judgement.verdict)));
        for (const auto& change :
             m_findings.update_scope(std::move(current), "lock.", check.lock_path, frozen_roots)) {
            m_log.log(finding_level(change), change.event(),
                      change.state == FindingState::resolved ? resolved_lock_fields(change, now)
                                                             : finding_event_fields(change));
        }
    }

    PassReport all;
    all.collisions = collisions;
    std::vector<Finding> current;
    for (auto& f : pass_findings(all)) {
        if (is_collision_event(f)) {
            current.push_back(std::move(f));
        }
    }
    for (const auto& change :
         m_findings.update_scope(std::move(current), "collision.", std::nullopt, frozen_roots)) {
        m_log.log(finding_level(change), change.event(), finding_event_fields(change));
    }
}

std::string status_line(std::uint64_t pass_number, const PassReport& report) {
    std::string s = "pass " + std::to_string(pass_number) + ": " +
                    std::to_string(report.stats.locks) + " locks, " +
                    std::to_string(report.stats.removed) + " removed";
    const auto would = report.stats.would_remove;
    if (would > 0) {
        s += ", " + std::to_string(would) + " would be removed (dry run)";
    }
    s += ", tmux " + tmux_summary(report);
    s += ", " + std::to_string(duplicate_claims(report)) + " collisions";
    const auto down = unavailable_count(report);
    if (down > 0) {
        s += ", " + std::to_string(down) + " of " + std::to_string(report.roots.size()) +
             " roots unavailable";
    }
    if (report.stats.unreadable_dirs > 0) {
        s += ", " + std::to_string(report.stats.unreadable_dirs) + " unreadable dirs";
    }
    if (report.stats.symlinked_runtimes > 0) {
        s += ", " + std::to_string(report.stats.symlinked_runtimes) + " symlinked .runtime";
    }
    return s;
}

TextReportWriter::TextReportWriter(std::ostream& out) : m_out(out) {}

void TextReportWriter::on_tmux(const std::vector<TmuxServerReport>& servers) {
    for (const auto& s : servers) {
        m_out << "tmux";
        if (servers.size() > 1) {
            m_out << ' ' << describe_tmux_server(s.server) << " (" << join_list(s.roots) << ")";
        }
        m_out << ": " << to_string(s.facts.state);
        if (!s.facts.detail.empty()) {
            m_out << " (" << s.facts.detail << ")";
        }
        m_out << '\n';
    }
}

void TextReportWriter::on_lock(LockRecord&& rec) {
    m_out << to_string(rec.action) << ' ' << to_string(rec.judgement.verdict) << ' '
          << rec.lock_path;
    if (rec.info) {
        m_out << " pid=" << rec.info->pid;
        if (!rec.info->session_id.empty()) {
            m_out << " session=" << rec.info->session_id;
        }
    }
    m_out << ": " << rec.judgement.reason;
    // On removal (or a dry run's would-remove) the reaper's detail is the re-check's reason: the
    // same words again, bar a start time recomputed a moment later.
    const bool restates_reason =
        rec.action == LockAction::removed || rec.action == LockAction::would_remove;
    if (!restates_reason && !rec.detail.empty() && rec.detail != rec.judgement.reason) {
        m_out << " (" << rec.detail << ")";
    }
    m_out << '\n';
}

void TextReportWriter::finish(const PassReport& report) {
    for (const auto& root : report.roots) {
        m_out << "root " << root.path << ": " << (root.ok ? std::string("ok") : root.error) << '\n';
    }
    for (const auto& c : report.collisions) {
        m_out << "collision " << to_string(c.kind) << ": " << c.message << '\n';
    }
    for (const auto& e : report.walk_errors) {
        m_out << "unreadable " << e.path << ": " << e.message << '\n';
    }
    for (const auto& e : report.skipped_runtimes) {
        m_out << "skipped " << e.path << ": " << e.message << '\n';
    }
    m_out << "stats: dirs=" << report.stats.dirs << " locks=" << report.stats.locks
          << " removed=" << report.stats.removed
          << " unreadable_dirs=" << report.stats.unreadable_dirs
          << " symlinked_runtimes=" << report.stats.symlinked_runtimes
          << " elapsed_ms=" << report.stats.elapsed_ms << '\n';
}

std::string format_report_text(const PassReport& report) {
    std::ostringstream out;
    TextReportWriter writer(out);
    replay_report(report, writer);
    return std::move(out).str();
}

} // namespace agentlock::daemon
