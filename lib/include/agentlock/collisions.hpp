#pragma once
// Collisions: a pure function over all verdicts of a pass.

#include <agentlock/lock_file.hpp>
#include <agentlock/verdict.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

enum class CollisionKind { stale, orphaned, duplicate_session, duplicate_pid };

std::string_view to_string(CollisionKind kind); ///< "stale", "duplicate-session", ...

/// One parsed lock with its verdict, as input to collision detection.
struct JudgedLock {
    std::string worker;
    std::int64_t pid = 0;
    std::string session_id;
    Verdict verdict = Verdict::unknown;
};

struct Collision {
    CollisionKind kind = CollisionKind::stale;
    std::vector<std::string> workers; ///< sorted
    std::int64_t pid = 0;
    std::string session_id;
    std::string message;
};

/// The seed's two (stale, orphaned) plus one session claimed by two or more workers and one live
/// PID holding two or more workers. Output order is deterministic.
std::vector<Collision> detect_collisions(const std::vector<JudgedLock>& locks);

} // namespace agentlock
