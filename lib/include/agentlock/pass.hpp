#pragma once
// One pass of the cleaner: walk the roots, ask each tmux server once, judge, remove stale, find
// collisions.

#include <agentlock/collisions.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/path_ref.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/reaper.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/tmux_servers.hpp>
#include <agentlock/tree_walk.hpp>
#include <agentlock/verdict.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

struct PassOptions {
    std::vector<std::string> roots;
    /// The tmux server each root's locks are judged against, in the order of `roots`; a root
    /// past its end uses tmux's default server (ServerRef{}). Roots sharing a server share its
    /// one answer.
    std::vector<ServerRef> root_servers;
    WalkOptions walk;
    bool dry_run = false;
    /// When set and true, the pass stops early: no removal starts after it is seen.
    const std::atomic<bool>* cancel = nullptr;
    /// Whether `collisions` holds the seed's per-lock kinds (stale, orphaned) besides the
    /// duplicate claims. The daemon reports those locks as findings and leaves them out.
    bool per_lock_collisions = true;
    /// Wall-clock steps seen while running (ClockWatch): a lock written before one is never
    /// judged reused by its start time alone.
    ClockFacts clock;
    /// The owner last judged alive for a worker's lock, when the caller keeps them (see
    /// ReuseFacts::known_owner); empty: none known. Asked once per local lock judged, never
    /// twice at once.
    std::function<std::optional<KnownOwner>(std::string_view worker)> known_owner;
    /// A tmux server or session created more than this after a lock's acquired_at is not its
    /// holder (TmuxEvidence::created_slack).
    std::chrono::milliseconds tmux_created_slack = k_default_tmux_created_slack;
    /// Asks the tmux server at a socket path. A lock that records its agent's server
    /// (tmux_socket) is judged against that server's answer, asked at most once per pass (and
    /// again before a removal), unless the configured server's answer is already that server's.
    /// Empty: such locks are judged against the configured server's answer, which the judge
    /// takes as theirs only when it comes from the same server.
    std::function<TmuxFacts(const TmuxServer& server)> ask_tmux_server;
    /// Fleet mode: judges again a lock judge_lock called foreign, by its host's presence in etcd
    /// (FleetMember::judge_foreign); `confirm` is set for the reaper's re-check. May be called
    /// from several walk threads at once. Unset: a foreign lock stays foreign.
    std::function<Judgement(const LockInfo& lock, const Judgement& foreign, bool confirm)>
        judge_foreign;
    /// Whether host-gone locks go to the reaper (fleet.remove_host_gone).
    bool remove_host_gone = false;
};

enum class LockAction : std::uint8_t { kept, removed, would_remove, skipped_changed };
std::string_view to_string(LockAction action); ///< "kept", "removed", "would-remove", ...

/// What a local lock that records a tmux session waits on while its session keeps it
/// (held-by-session) or while its server cannot be asked (unknown): the server it was judged
/// against, and the processes whose exit may end the hold (tmux_hold_pids of that answer; empty
/// when the server could not be asked, the lock's verdict then unknown, until LockTable keeps
/// those of its server's last answer).
struct TmuxHold {
    ServerRef server; ///< the lock's root's server, or the one it records (socket_path)
    std::vector<std::int64_t> pids;

    bool operator==(const TmuxHold&) const = default;
};

/// One lock as the pass saw and handled it.
struct LockRecord {
    std::string worker;
    std::string lock_path;
    std::optional<LockInfo> info; ///< unset for invalid locks
    std::string content;          ///< the raw bytes judged (the full removed content on removal)
    Judgement judgement;
    LockAction action = LockAction::kept;
    ProcessFacts process; ///< evidence: what the process probe saw
    std::string detail;   ///< reaper's detail when skipped or failed
    /// In a pass: the index in its tmux_servers of the root's server (a lock that records its
    /// own server is judged against that one: see `hold`).
    std::size_t tmux_server = 0;
    /// Set when the lock waits on a tmux session (kept, held-by-session or unknown for want of
    /// tmux): what the daemon watches and asks again for it.
    std::optional<TmuxHold> hold;
};

/// What a pass keeps of each lock once it has handled it, and what the daemon's lock table keeps
/// between passes: enough to detect collisions and to watch owners and sessions, a few dozen
/// bytes rather than the whole record (fleets hold 100,000 locks).
struct LockSummary {
    PathRef worker;       ///< pooled: the daemon's tables share this one copy
    PathRef session_id;   ///< pooled too; empty when absent or when the lock did not parse
    std::int64_t pid = 0; ///< 0 when the lock did not parse
    std::optional<std::uint64_t> start_ticks; ///< the owner's, as the process probe saw it
    Verdict verdict = Verdict::unknown;
    LockAction action = LockAction::kept;
    ProcessState owner = ProcessState::unknown; ///< what the process probe saw
    TmuxState tmux_state = TmuxState::ok;       ///< tmux's state when it was judged
    bool parsed = false;                        ///< pid and session_id come from the lock

    bool operator==(const LockSummary&) const = default;
};

/// The summary of one record, judged while tmux's state was `tmux_state`.
LockSummary summarize(const LockRecord& record, TmuxState tmux_state);

/// One tmux server of a pass: the roots judged against it and its answer.
struct TmuxServerReport {
    ServerRef server;
    std::vector<std::string> roots;
    TmuxFacts facts;
};

/// Receives the locks of a streaming pass as they are handled, so that no record outlives its
/// moment: the daemon logs each one and keeps only its summary.
class PassSink {
public:
    virtual ~PassSink() = default;
    /// The answer of each tmux server of this pass (in the order of their first roots; at least
    /// one), before any lock. A record's tmux_server indexes this list.
    virtual void on_tmux(const std::vector<TmuxServerReport>& servers) = 0;
    /// One lock as judged and handled (kept, removed, ...), in walk order, never two at once
    /// (but possibly from several walk threads).
    virtual void on_lock(LockRecord&& record) = 0;
};

struct RootReport {
    std::string path;
    bool ok = true;
    std::string error; ///< why the root could not be walked
};

struct PassStats {
    std::uint64_t dirs = 0;
    std::uint64_t locks = 0;
    std::uint64_t removed = 0;
    std::uint64_t would_remove = 0;
    std::uint64_t unreadable_dirs = 0;
    std::uint64_t symlinked_runtimes = 0; ///< `.runtime` symlinks the walk did not follow
    std::uint64_t elapsed_ms = 0;
};

struct PassReport {
    std::vector<RootReport> roots;
    TmuxFacts tmux; ///< the first server's answer (tmux_servers[0]), as before servers per root
    /// Every tmux server asked, in the order of their first roots; empty in a report assembled
    /// by hand (see tmux_servers_of).
    std::vector<TmuxServerReport> tmux_servers;
    /// Every lock's record, sorted by lock_path; empty when the pass streamed them to a sink.
    std::deque<LockRecord> locks;
    /// Every lock's summary, sorted by worker (see summarize_locks for reports made by hand). A
    /// deque: it grows without the spare half a vector keeps.
    std::deque<LockSummary> summaries;
    /// The hold of every lock kept waiting on a tmux session, by worker.
    std::map<std::string, TmuxHold, std::less<>> holds;
    std::vector<Collision> collisions;
    std::vector<WalkError> walk_errors;
    /// Symlinked `.runtime` entries the walk did not follow (WalkStats::skipped), capped per root.
    std::vector<WalkError> skipped_runtimes;
    PassStats stats;
};

/// Runs one full pass. Never throws for a bad root or lock: everything lands in the report.
/// Each server of options.root_servers is asked once, through `tmux`, before any lock.
PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbes& tmux,
                    const HostFacts& host);

/// The same pass, streaming: every record goes to `sink` as soon as it is handled instead of
/// into `locks`, so memory grows with the summaries only. Collisions and stats are the same.
PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbes& tmux,
                    const HostFacts& host, PassSink& sink);

/// run_pass with one probe for every server (OneTmuxProbe).
PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                    const HostFacts& host);
PassReport run_pass(const PassOptions& options, ProcessProbe& processes, TmuxProbe& tmux,
                    const HostFacts& host, PassSink& sink);

/// The report's tmux servers, or for a report assembled by hand (no tmux_servers) one server,
/// tmux's default, with every root and `report.tmux`.
std::vector<TmuxServerReport> tmux_servers_of(const PassReport& report);

/// The answer `record` was judged with in `report` (its server's; report.tmux when unknown).
const TmuxFacts& tmux_facts_of(const PassReport& report, const LockRecord& record);

/// The tmux server of the configured root that contains `path`, or of none (ServerRef{}).
ServerRef tmux_server_of_path(const PassOptions& options, std::string_view path);

/// Fills `summaries` from `locks` (sorted by worker): for reports assembled by hand.
void summarize_locks(PassReport& report);

/// The summary of `worker` in `summaries` (sorted by worker), or nullptr.
const LockSummary* find_summary(const std::deque<LockSummary>& summaries, std::string_view worker);

/// The outcome of re-checking one worker's lock outside a full pass (see check_worker).
struct WorkerCheck {
    enum class State {
        found,       ///< the worker has a lock entry: `record` says how it was judged and handled
        absent,      ///< no lock there, or a symlink or non-directory on the way: nothing to judge
        outside,     ///< a place no full pass looks: under no root, pruned, too deep, other mount
        unreachable, ///< a directory on the way could not be opened or read; `error` says why
    };
    State state = State::absent;
    std::string worker;
    std::string lock_path;
    std::string root;              ///< the configured root the worker lies under
    ServerRef tmux_server;         ///< that root's tmux server
    LockRecord record;             ///< set when state is found
    std::optional<TmuxFacts> tmux; ///< the tmux answer the judgement used, when tmux was asked
    std::string error;             ///< why it is outside or unreachable
};

std::string_view to_string(WorkerCheck::State state); ///< "found", "absent", ...

/// Judges one worker's lock and removes it when stale, with the same rule, reaper and evidence
/// as run_pass, for event-driven re-checks. <worker>/.runtime is reached from the configured
/// root that contains `worker_path`, one component at a time with openat(O_NOFOLLOW|O_DIRECTORY),
/// so no symlink is followed, and only where a full pass would look (prune list, max_depth,
/// one_file_system). The root's tmux server (options.root_servers) is asked only when the lock
/// records a session, unless `fresh_tmux` (an answer just obtained from that same server) is
/// given. Never throws for a bad path or lock.
WorkerCheck check_worker(const std::string& worker_path, const PassOptions& options,
                         ProcessProbe& processes, TmuxProbes& probes, const HostFacts& host,
                         const TmuxFacts* fresh_tmux = nullptr);

/// check_worker with one probe for every server (OneTmuxProbe).
WorkerCheck check_worker(const std::string& worker, const PassOptions& options,
                         ProcessProbe& processes, TmuxProbe& tmux, const HostFacts& host,
                         const TmuxFacts* fresh_tmux = nullptr);

/// The report as the JSON document `agentlockd --once --json` prints: an object with tmux (the
/// first server's state), tmux_servers, locks, roots, root_errors, collisions, walk_errors,
/// skipped_runtimes and stats (see JsonReportWriter).
std::string report_to_json(const PassReport& report);

/// Writes report_to_json's document while a streaming pass runs, so that no lock is held longer
/// than it takes to print it: "tmux", "tmux_servers" and the opening of "locks" on on_tmux, each
/// lock on on_lock (in the order the pass handles them), the rest on finish.
class JsonReportWriter final : public PassSink {
public:
    explicit JsonReportWriter(std::ostream& out);
    void on_tmux(const std::vector<TmuxServerReport>& servers) override;
    void on_lock(LockRecord&& record) override;
    /// Closes the locks and writes roots, root_errors, collisions, walk_errors, skipped_runtimes
    /// and stats.
    void finish(const PassReport& report);

private:
    std::ostream& m_out;
    std::size_t m_locks = 0;
};

/// Feeds a finished report (its tmux servers, each of its `locks`, then the rest) to a
/// streaming writer such as JsonReportWriter: what a streaming pass would have written.
template <typename Writer> void replay_report(const PassReport& report, Writer& writer) {
    writer.on_tmux(tmux_servers_of(report));
    for (const auto& rec : report.locks) {
        LockRecord copy = rec;
        writer.on_lock(std::move(copy));
    }
    writer.finish(report);
}

} // namespace agentlock
