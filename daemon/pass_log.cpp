#include "pass_log.hpp"

#include <algorithm>

namespace agentlock::daemon {

namespace {

std::uint64_t count_action(const PassReport& report, LockAction action) {
    return static_cast<std::uint64_t>(
        std::count_if(report.locks.begin(), report.locks.end(),
                      [action](const LockRecord& r) { return r.action == action; }));
}

std::size_t unavailable_count(const PassReport& report) {
    return static_cast<std::size_t>(std::count_if(report.roots.begin(), report.roots.end(),
                                                  [](const RootReport& r) { return !r.ok; }));
}

// What a lock whose finding went away is now: "removed", "gone" (someone else removed it), or its
// current verdict ("live", "stale", ...).
std::string lock_now(const PassReport& report, const std::string& lock_path) {
    for (const auto& rec : report.locks) {
        if (rec.lock_path == lock_path) {
            return rec.action == LockAction::removed
                       ? "removed"
                       : std::string(to_string(rec.judgement.verdict));
        }
    }
    return "gone";
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

void PassLogger::log_pass(const PassReport& report, bool cancelled,
                          std::chrono::steady_clock::time_point now) {
    ++m_passes;
    for (const auto& rec : report.locks) {
        if (rec.action == LockAction::removed) {
            m_log.log(LogLevel::info, "lock.removed",
                      lock_event_fields(rec, report.tmux, true, "pass"));
        } else if (rec.action == LockAction::skipped_changed) {
            m_log.log(LogLevel::debug, "lock.skipped_changed",
                      lock_event_fields(rec, report.tmux, false, "pass"));
        }
    }
    if (!cancelled) {
        for (const auto& change :
             m_findings.update(findings_of(report), unavailable_roots(report))) {
            Fields fields = finding_event_fields(change);
            if (change.event() == "tmux.recovered") {
                // Say what tmux answers now, not what the failure was.
                fields = {{"state", "resolved"},
                          {"tmux_state", std::string(to_string(report.tmux.state))}};
                if (!report.tmux.detail.empty()) {
                    fields.emplace_back("tmux_detail", report.tmux.detail);
                }
            } else if (change.event() == "root.recovered") {
                fields = {{"state", "resolved"}, {"root", change.finding.key}};
            } else if (change.state == FindingState::resolved &&
                       change.finding.event.rfind("lock.", 0) == 0) {
                // The other fields are as last seen; say what became of the lock.
                fields.insert(fields.begin() + 1, {"now", lock_now(report, change.finding.key)});
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
        {"would_remove", std::to_string(count_action(report, LockAction::would_remove))},
        {"unreadable_dirs", std::to_string(report.stats.unreadable_dirs)},
        {"collisions", std::to_string(duplicate_claims(report))},
        {"tmux", std::string(to_string(report.tmux.state))},
        {"open_findings", std::to_string(m_findings.open_count())},
        {"elapsed_ms", std::to_string(report.stats.elapsed_ms)},
    };
    if (cancelled) {
        fields.emplace_back("cancelled", "true");
    }
    m_log.log(level, "pass.completed", fields);
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
        PassReport one;
        one.tmux = tmux;
        if (found) {
            one.locks.push_back(rec);
        }
        std::vector<Finding> current;
        for (auto& f : findings_of(one)) {
            if (is_lock_event(f)) {
                current.push_back(std::move(f));
            }
        }
        const std::string now = !found ? "gone"
                                       : (rec.action == LockAction::removed
                                              ? "removed"
                                              : std::string(to_string(rec.judgement.verdict)));
        const std::string& lock_path = check.lock_path;
        for (const auto& change : m_findings.update_some(
                 std::move(current),
                 [&lock_path](const Finding& f) { return is_lock_event(f) && f.key == lock_path; },
                 frozen_roots)) {
            Fields fields = finding_event_fields(change);
            if (change.state == FindingState::resolved) {
                fields.insert(fields.begin() + 1, {"now", now});
            }
            m_log.log(finding_level(change), change.event(), fields);
        }
    }

    PassReport all;
    all.collisions = collisions;
    std::vector<Finding> current;
    for (auto& f : findings_of(all)) {
        if (is_collision_event(f)) {
            current.push_back(std::move(f));
        }
    }
    for (const auto& change :
         m_findings.update_some(std::move(current), is_collision_event, frozen_roots)) {
        m_log.log(finding_level(change), change.event(), finding_event_fields(change));
    }
}

std::string status_line(std::uint64_t pass_number, const PassReport& report) {
    std::string s = "pass " + std::to_string(pass_number) + ": " +
                    std::to_string(report.stats.locks) + " locks, " +
                    std::to_string(report.stats.removed) + " removed";
    const auto would = count_action(report, LockAction::would_remove);
    if (would > 0) {
        s += ", " + std::to_string(would) + " would be removed (dry run)";
    }
    s += ", tmux " + std::string(to_string(report.tmux.state));
    s += ", " + std::to_string(duplicate_claims(report)) + " collisions";
    const auto down = unavailable_count(report);
    if (down > 0) {
        s += ", " + std::to_string(down) + " of " + std::to_string(report.roots.size()) +
             " roots unavailable";
    }
    if (report.stats.unreadable_dirs > 0) {
        s += ", " + std::to_string(report.stats.unreadable_dirs) + " unreadable dirs";
    }
    return s;
}

std::string format_report_text(const PassReport& report) {
    std::string out;
    out += "tmux: " + std::string(to_string(report.tmux.state));
    if (!report.tmux.detail.empty()) {
        out += " (" + report.tmux.detail + ")";
    }
    out += '\n';
    for (const auto& root : report.roots) {
        out += "root " + root.path + ": " + (root.ok ? std::string("ok") : root.error) + '\n';
    }
    for (const auto& rec : report.locks) {
        out += std::string(to_string(rec.action)) + " " +
               std::string(to_string(rec.judgement.verdict)) + " " + rec.lock_path;
        if (rec.info) {
            out += " pid=" + std::to_string(rec.info->pid);
            if (!rec.info->session_id.empty()) {
                out += " session=" + rec.info->session_id;
            }
        }
        out += ": " + rec.judgement.reason;
        if (!rec.detail.empty() && rec.detail != rec.judgement.reason) {
            out += " (" + rec.detail + ")";
        }
        out += '\n';
    }
    for (const auto& c : report.collisions) {
        out += "collision " + std::string(to_string(c.kind)) + ": " + c.message + '\n';
    }
    for (const auto& e : report.walk_errors) {
        out += "unreadable " + e.path + ": " + e.message + '\n';
    }
    out += "stats: dirs=" + std::to_string(report.stats.dirs) +
           " locks=" + std::to_string(report.stats.locks) +
           " removed=" + std::to_string(report.stats.removed) +
           " unreadable_dirs=" + std::to_string(report.stats.unreadable_dirs) +
           " elapsed_ms=" + std::to_string(report.stats.elapsed_ms) + '\n';
    return out;
}

} // namespace agentlock::daemon
