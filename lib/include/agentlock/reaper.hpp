#pragma once
// The reaper: the only code that unlinks a lock file.

#include <agentlock/lock_file.hpp>
#include <agentlock/verdict.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace agentlock {

enum class RemovalAction {
    removed,         ///< unlinked; `content` holds what was removed
    would_remove,    ///< dry run: every check passed, nothing unlinked
    skipped_changed, ///< the lock changed, is being acquired (flock held) or is no longer stale
    failed,          ///< a system call failed; `detail` says which
};

std::string_view to_string(RemovalAction action);

struct RemovalResult {
    RemovalAction action = RemovalAction::failed;
    std::string content; ///< the full bytes of the lock as last read
    std::string detail;  ///< why it was skipped or failed, or the re-check's reason
};

/// Re-judges a lock read back from disk; removal goes ahead only on a removable verdict.
using Rejudge = std::function<Judgement(const LockInfo&)>;

/// Removes `<runtime_fd>/agent.lock` only if it is unchanged and still stale: takes the sidecar
/// flock non-blocking where the sidecar exists (never creating it), re-reads and compares with
/// `judged_bytes`, re-judges, then unlinkat. Remaining race: a writer that neither flocks nor
/// renames can still write between the re-read and the unlink. `removable` says which verdicts
/// of the re-judgement let the removal go ahead (only stale unless fleet mode says otherwise).
RemovalResult remove_if_unchanged(int runtime_fd, const std::string& lock_path,
                                  std::string_view judged_bytes, const Rejudge& rejudge,
                                  bool dry_run, bool (*removable)(Verdict) = is_removable);

} // namespace agentlock
