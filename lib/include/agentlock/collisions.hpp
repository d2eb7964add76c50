#pragma once
// Collisions: a pure function over all verdicts of a pass.

#include <agentlock/lock_file.hpp>
#include <agentlock/path_ref.hpp>
#include <agentlock/verdict.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

enum class CollisionKind { stale, orphaned, duplicate_session, duplicate_pid };

std::string_view to_string(CollisionKind kind); ///< "stale", "duplicate-session", ...

/// One parsed lock with its verdict, as input to collision detection. The strings are views
/// into the caller's records, which must outlive the call: at fleet scale a copy of every path
/// would cost more than the pass.
struct JudgedLock {
    std::string_view worker;
    std::int64_t pid = 0;
    std::string_view session_id;
    Verdict verdict = Verdict::unknown;
};

/// Messages name at most this many workers of one collision, then say how many more there are
/// (the `workers` list itself is always complete).
inline constexpr std::size_t k_collision_message_workers = 20;

struct Collision {
    CollisionKind kind = CollisionKind::stale;
    std::vector<PathRef> workers; ///< sorted; pooled (a PID may hold thousands)
    std::int64_t pid = 0;
    std::string session_id;
    std::string message; ///< names at most k_collision_message_workers workers
};

/// A lock that some agent may still be using (live, orphaned, held-by-session, unknown): only
/// these can collide.
bool claims_identity(Verdict verdict);

/// `workers` joined with `sep`, cut after k_collision_message_workers with ", ... and N more".
std::string list_workers(const std::vector<PathRef>& workers, std::string_view sep);

/// The workers as plain strings.
std::vector<std::string> worker_names(const std::vector<PathRef>& workers);

/// The seed's two (stale, orphaned; only with `per_lock_kinds`) plus one session claimed by two
/// or more workers and one live PID holding two or more workers. Output order is deterministic.
std::vector<Collision> detect_collisions(const std::vector<JudgedLock>& locks,
                                         bool per_lock_kinds = true);

} // namespace agentlock
