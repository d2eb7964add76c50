#pragma once
// Findings: what a pass found that operators should hear about once when it appears, again when
// it changes, and once when it goes away (not on every pass).

#include <agentlock/pass.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace agentlock {

/// Ordered key=value pairs describing a finding or an event; values are plain text.
using FindingFields = std::vector<std::pair<std::string, std::string>>;

/// One thing worth telling an operator about, as seen in one pass.
struct Finding {
    std::string event;          ///< "lock.orphaned", "collision.duplicate_pid", "root.unavailable"
    std::string key;            ///< what it is about, unique within `event`: a lock path, workers
    std::string resolved_event; ///< event logged when it goes away; empty means `event` again
    std::string fingerprint;    ///< when this changes between passes the finding is logged again
    std::vector<std::string> paths; ///< lock paths it concerns, to keep it while a root is down
    FindingFields fields;
};

enum class FindingState { appeared, changed, resolved };

std::string_view to_string(FindingState state); ///< "appeared", "changed", "resolved"

/// A transition of one finding between two passes.
struct FindingChange {
    FindingState state = FindingState::appeared;
    Finding finding; ///< for `resolved`, the finding as last seen
    /// The event name to log: `finding.event`, or its resolved_event when it went away.
    const std::string& event() const;
};

/// Remembers the open findings between passes and reports only their transitions.
class FindingTracker {
public:
    /// Compares `current` with the findings open after the previous update and returns the
    /// transitions: appeared, changed (same event and key, other fingerprint) and resolved.
    /// Open findings with a path under one of `frozen_roots` (roots this pass could not walk) are
    /// kept as they were instead of being resolved. Output: resolved first, then the rest, each
    /// in (event, key) order.
    std::vector<FindingChange> update(std::vector<Finding> current,
                                      const std::vector<std::string>& frozen_roots = {});

    /// Like update, for part of the findings only (an event-driven re-check of one lock): the
    /// open findings `in_scope` selects are compared with `current` (appeared, changed, resolved
    /// unless frozen), and every other open finding is left as it is. `current` should hold
    /// only findings in scope. Same output order as update.
    std::vector<FindingChange> update_some(std::vector<Finding> current,
                                           const std::function<bool(const Finding&)>& in_scope,
                                           const std::vector<std::string>& frozen_roots = {});

    /// Number of findings currently open.
    std::size_t open_count() const { return m_open.size(); }

private:
    std::map<std::pair<std::string, std::string>, Finding> m_open;
};

/// The findings in one pass report: locks that need attention (orphaned, held by a session,
/// invalid, foreign, unknown, would be removed in a dry run, failed removal), duplicate-session
/// and duplicate-pid collisions, unreadable directories, tmux unreachable, roots unavailable.
/// Live locks, removals (log those every time) and the seed's stale/orphaned collision kinds
/// (already covered per lock) are not findings.
std::vector<Finding> findings_of(const PassReport& report);

/// Paths of the roots this pass could not walk.
std::vector<std::string> unavailable_roots(const PassReport& report);

/// The fields that describe one lock record and its evidence for logs: lock_path, worker,
/// verdict, reason, action, pid, session_id, hostname, acquired_at, pid_state, pid_detail,
/// tmux_state, tmux_detail, detail and, when asked, the full raw content. Empty values are left
/// out, except session_id and hostname of a parsed lock.
FindingFields lock_record_fields(const LockRecord& record, const TmuxFacts& tmux,
                                 bool with_content);

/// "alive", "dead", "zombie", "unknown".
std::string_view process_state_name(ProcessState state);

/// True when `path` is `root` itself or lies below it ("/a/b" is under "/a" and "/a/", not "/ab").
bool path_is_under(std::string_view path, std::string_view root);

} // namespace agentlock
