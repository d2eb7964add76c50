#pragma once
// Findings: what a pass found that operators should hear about once when it appears, again when
// it changes, and once when it goes away (not on every pass).

#include <agentlock/pass.hpp>
#include <agentlock/path_ref.hpp>
#include <agentlock/scope.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
    std::vector<std::string> paths;   ///< lock paths it concerns, to keep it while a root is down
    bool key_lines_are_paths = false; ///< instead of `paths`: the lines of `key` are the paths
    FindingFields fields;             ///< logged when it appears or changes
    /// Logged when it goes away (with the state). Only these are kept while it is open, not
    /// `fields`: a fleet can hold tens of thousands of open findings.
    FindingFields resolve_fields;
};

enum class FindingState { appeared, changed, resolved };

std::string_view to_string(FindingState state); ///< "appeared", "changed", "resolved"

/// A transition of one finding between two passes.
struct FindingChange {
    FindingState state = FindingState::appeared;
    /// For `resolved`: event, key, resolved_event, paths and, as `fields`, the resolve_fields
    /// it was last seen with (its fingerprint is not kept).
    Finding finding;
    /// The event name to log: `finding.event`, or its resolved_event when it went away.
    const std::string& event() const;
};

/// Remembers the open findings between passes and reports only their transitions. Each open
/// finding costs its event and key, a hash of its fingerprint and its resolve_fields.
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
    /// only findings in scope. Same output order as update. Looks at every open finding: see
    /// update_scope for the cheap form.
    std::vector<FindingChange> update_some(std::vector<Finding> current,
                                           const std::function<bool(const Finding&)>& in_scope,
                                           const std::vector<std::string>& frozen_roots = {});

    /// update_some for the open findings whose event starts with `event_prefix` and, when
    /// `key` is given, whose key is `key`, in O(events x log n) rather than O(n).
    std::vector<FindingChange> update_scope(std::vector<Finding> current,
                                            std::string_view event_prefix,
                                            std::optional<std::string_view> key,
                                            const std::vector<std::string>& frozen_roots = {});

    // Streaming: begin(), then observe() each current finding as it is found, then sweep().
    // update() is the same done at once. Nothing else may use the tracker in between.

    /// Starts a round: every open finding counts as not seen yet.
    void begin();
    /// One current finding: appeared or changed (then it is logged now, with its fields), or
    /// nullopt when it is open and unchanged, or when it was already seen in this round.
    std::optional<FindingState> observe(const Finding& finding);
    /// Ends the round: the open findings not seen in it, in scope and not frozen, resolve.
    /// `in_scope` null means all. Output in (event, key) order.
    std::vector<FindingChange> sweep(const std::vector<std::string>& frozen_roots,
                                     const std::function<bool(const Finding&)>* in_scope = nullptr);

    /// Number of findings currently open.
    std::size_t open_count() const { return m_open.size(); }

private:
    // Where the paths of an open finding are: its key, the lines of its key (a collision's
    // workers), none, or a list of their own.
    enum class Paths : unsigned char { key, key_lines, none, listed };
    // What a non-lock finding keeps besides; lock findings, most of them, need none of it.
    struct Extra {
        std::string resolved_event;
        std::vector<std::string> paths;
        FindingFields resolve_fields;
    };
    struct Open {
        std::uint64_t fingerprint = 0;
        std::uint64_t round = 0; ///< the last round that saw it
        Paths paths = Paths::key;
        std::unique_ptr<Extra> extra;
    };
    // (event, key), stored pooled: a lock path is kept as its worker's pooled path and the
    // lock suffix, so a lock finding costs no copy of its path.
    struct OpenKey {
        PathRef event;
        PathRef base;
        bool lock_suffix = false;
        std::string key() const;
    };
    struct KeyView {
        std::string_view event;
        std::string_view key;
    };
    struct KeyLess {
        using is_transparent = void;
        bool operator()(const OpenKey& a, const OpenKey& b) const noexcept;
        bool operator()(const OpenKey& a, const KeyView& b) const noexcept;
        bool operator()(const KeyView& a, const OpenKey& b) const noexcept;
    };
    using OpenMap = std::map<OpenKey, Open, KeyLess>;

    static OpenKey map_key(std::string_view event, std::string_view key);
    static Open make_open(const Finding& finding, std::uint64_t round);
    static Finding as_finding(const OpenMap::value_type& entry);
    bool frozen(const OpenMap::value_type& entry, const std::vector<std::string>& roots) const;
    /// Resolves `it` (unseen in this round) unless frozen; returns the next iterator.
    OpenMap::iterator resolve(OpenMap::iterator it, const std::vector<std::string>& frozen_roots,
                              std::vector<FindingChange>& out);
    std::vector<FindingChange> observe_all(std::vector<Finding> current);

    OpenMap m_open;
    std::uint64_t m_round = 0;
};

/// The findings in one pass report: locks that need attention (orphaned, held by a session,
/// invalid, foreign, unknown, would be removed in a dry run, failed removal), duplicate-session
/// and duplicate-pid collisions, unreadable directories, symlinked `.runtime` entries, tmux
/// unreachable, roots unavailable. Live locks, removals (log those every time) and the seed's
/// stale/orphaned collision kinds (already covered per lock) are not findings.
std::vector<Finding> findings_of(const PassReport& report);

/// The finding one lock record makes, if any (findings_of applies it to every record).
std::optional<Finding> lock_finding(const LockRecord& record, const TmuxFacts& tmux);

/// The findings of a report other than its locks': roots unavailable, tmux unreachable (one
/// finding per server, keyed by it),
/// duplicate claims, unreadable directories, symlinked `.runtime` entries. With lock_finding for
/// each record streamed, these make up findings_of.
std::vector<Finding> pass_findings(const PassReport& report);

/// The key of a tmux server's tmux.unreachable finding: "tmux " and describe_tmux_server.
std::string tmux_finding_key(const ServerRef& server);

/// Events of lock findings ("lock.orphaned", ...), each a finding's `event` for one lock.
const std::vector<std::string_view>& lock_finding_events();

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

} // namespace agentlock
