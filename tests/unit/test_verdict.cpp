// The one staleness rule as a truth table over (host, owner, session, tmux).
#include "fakes.hpp"

#include <agentlock/verdict.hpp>

#include <gtest/gtest.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;
using test::tmux_ok;
using test::tmux_state;

const Timestamp k_acquired = *parse_rfc3339("2026-11-27T05:00:00Z");
const HostFacts k_host{"here", "boot-1"};

LockInfo lock(std::int64_t pid, std::string session = "", std::string host = "") {
    LockInfo l;
    l.pid = pid;
    l.acquired_at = k_acquired;
    l.session_id = std::move(session);
    l.hostname = std::move(host);
    return l;
}

ProcessFacts alive(Timestamp started = k_acquired - 10s, std::uint64_t ticks = 500) {
    ProcessFacts p;
    p.state = ProcessState::alive;
    p.start_time = started;
    p.start_ticks = ticks;
    return p;
}

ProcessFacts state(ProcessState s, std::string detail = "") {
    ProcessFacts p;
    p.state = s;
    p.detail = std::move(detail);
    return p;
}

Verdict v(const LockInfo& l, const ProcessFacts& p, const TmuxFacts& t) {
    return judge_lock(l, p, t, k_host).verdict;
}

TEST(Verdict, NamesMatchTheReportContract) {
    EXPECT_EQ(to_string(Verdict::live), "live");
    EXPECT_EQ(to_string(Verdict::stale), "stale");
    EXPECT_EQ(to_string(Verdict::held_by_session), "held-by-session");
    EXPECT_EQ(to_string(Verdict::orphaned), "orphaned");
    EXPECT_EQ(to_string(Verdict::foreign), "foreign");
    EXPECT_EQ(to_string(Verdict::invalid), "invalid");
    EXPECT_EQ(to_string(Verdict::unknown), "unknown");
}

TEST(Verdict, OnlyStaleIsRemovable) {
    for (Verdict x : {Verdict::live, Verdict::held_by_session, Verdict::orphaned, Verdict::foreign,
                      Verdict::invalid, Verdict::unknown}) {
        EXPECT_FALSE(is_removable(x)) << to_string(x);
    }
    EXPECT_TRUE(is_removable(Verdict::stale));
}

// No session recorded: the owner alone decides.
TEST(Verdict, NoSessionAliveIsLive) {
    EXPECT_EQ(v(lock(10), alive(), tmux_state(TmuxState::unknown)), Verdict::live);
}
TEST(Verdict, NoSessionDeadIsStale) {
    EXPECT_EQ(v(lock(10), state(ProcessState::dead), tmux_state(TmuxState::unknown)),
              Verdict::stale);
}
TEST(Verdict, ZombieOwnerIsDead) {
    EXPECT_EQ(v(lock(10), state(ProcessState::zombie), tmux_ok({})), Verdict::stale);
}
TEST(Verdict, NonPositivePidIsDead) {
    EXPECT_EQ(v(lock(0), alive(), tmux_ok({})), Verdict::stale);
    EXPECT_EQ(v(lock(-5), alive(), tmux_ok({})), Verdict::stale);
}
TEST(Verdict, ProbeFailureIsUnknownNeverStale) {
    EXPECT_EQ(v(lock(10), state(ProcessState::unknown, "kill: EINVAL"), tmux_ok({})),
              Verdict::unknown);
}

// A reused PID: the process holding it started after the lock was acquired.
TEST(Verdict, ProcessStartedAfterAcquireIsReused) {
    EXPECT_EQ(v(lock(10), alive(k_acquired + 1h), tmux_ok({})), Verdict::stale);
    auto j = judge_lock(lock(10), alive(k_acquired + 1h), tmux_ok({}), k_host);
    EXPECT_NE(j.reason.find("reused"), std::string::npos) << j.reason;
}
TEST(Verdict, StartWithinTheMarginIsTheOwner) {
    EXPECT_EQ(v(lock(10), alive(k_acquired + 1500ms), tmux_ok({})), Verdict::live);
    EXPECT_EQ(v(lock(10), alive(k_acquired + k_start_time_margin + 1ms), tmux_ok({})),
              Verdict::stale);
}
TEST(Verdict, RecordedStartTicksDecideReuse) {
    LockInfo l = lock(10);
    l.pid_start_ticks = 500;
    EXPECT_EQ(v(l, alive(k_acquired - 1h, 500), tmux_ok({})), Verdict::live);
    // Different start ticks: reused even though the start time looks plausible.
    EXPECT_EQ(v(l, alive(k_acquired - 1h, 501), tmux_ok({})), Verdict::stale);
}
TEST(Verdict, RecordedBootIdFromAnotherBootMeansDead) {
    LockInfo l = lock(10);
    l.boot_id = "boot-0";
    EXPECT_EQ(v(l, alive(), tmux_ok({})), Verdict::stale);
    l.boot_id = "boot-1";
    EXPECT_EQ(v(l, alive(), tmux_ok({})), Verdict::live);
}
TEST(Verdict, UnreadableStartTimeIsUnknownNotDead) {
    ProcessFacts p = state(ProcessState::alive, "read /proc/10/stat: Permission denied");
    EXPECT_EQ(v(lock(10), p, tmux_ok({})), Verdict::unknown);
    LockInfo l = lock(10);
    l.pid_start_ticks = 7;
    EXPECT_EQ(v(l, p, tmux_ok({})), Verdict::unknown);
}

// Another host's lock (shared file system) is never judged by a local PID.
TEST(Verdict, AnotherHostIsForeignWhateverThePid) {
    EXPECT_EQ(v(lock(10, "", "elsewhere"), state(ProcessState::dead), tmux_ok({})),
              Verdict::foreign);
    EXPECT_EQ(
        v(lock(10, "s", "elsewhere"), state(ProcessState::dead), tmux_state(TmuxState::no_server)),
        Verdict::foreign);
    EXPECT_EQ(v(lock(10, "", "here"), state(ProcessState::dead), tmux_ok({})), Verdict::stale);
}

// Session recorded, owner dead: the agent often lives on in its tmux session after the process
// that wrote the lock has gone. One careful rule for acquire, check and the cleaner.
TEST(Verdict, DeadOwnerLiveSessionIsHeldBySession) {
    EXPECT_EQ(v(lock(10, "s1"), state(ProcessState::dead), tmux_ok({"s1"})),
              Verdict::held_by_session);
}
TEST(Verdict, DeadOwnerGoneSessionIsStale) {
    EXPECT_EQ(v(lock(10, "s1"), state(ProcessState::dead), tmux_ok({"s2"})), Verdict::stale);
}
TEST(Verdict, DeadOwnerNoServerIsStale) {
    EXPECT_EQ(v(lock(10, "s1"), state(ProcessState::dead), tmux_state(TmuxState::no_server)),
              Verdict::stale);
}
TEST(Verdict, DeadOwnerTmuxUnknownIsUnknown) { // never "no sessions"
    auto j = judge_lock(lock(10, "s1"), state(ProcessState::dead),
                        tmux_state(TmuxState::unknown, "permission denied"), k_host);
    EXPECT_EQ(j.verdict, Verdict::unknown);
    EXPECT_NE(j.reason.find("permission denied"), std::string::npos) << j.reason;
}

// Session recorded, owner alive.
TEST(Verdict, LiveOwnerLiveSessionIsLive) {
    EXPECT_EQ(v(lock(10, "s1"), alive(), tmux_ok({"s1"})), Verdict::live);
}
TEST(Verdict, LiveOwnerGoneSessionIsOrphaned) {
    EXPECT_EQ(v(lock(10, "s1"), alive(), tmux_ok({"s2"})), Verdict::orphaned);
    EXPECT_EQ(v(lock(10, "s1"), alive(), tmux_state(TmuxState::no_server)), Verdict::orphaned);
}
TEST(Verdict, LiveOwnerTmuxUnknownIsUnknown) {
    EXPECT_EQ(v(lock(10, "s1"), alive(), tmux_state(TmuxState::unknown)), Verdict::unknown);
}

// Session ids, pane ids and names are matched each as what they are: agents often record
// $TMUX_PANE ("%N"), which must match a pane, never the session "$N".
TEST(Verdict, SessionMatchedByIdAndPaneId) {
    TmuxFacts t = tmux_ok({"work"}, {"$3"}, {"%7"});
    EXPECT_EQ(v(lock(10, "$3"), state(ProcessState::dead), t), Verdict::held_by_session);
    EXPECT_EQ(v(lock(10, "%7"), state(ProcessState::dead), t), Verdict::held_by_session);
    EXPECT_EQ(v(lock(10, "work"), state(ProcessState::dead), t), Verdict::held_by_session);
    // "%3" is a pane id, not session $3's alias.
    EXPECT_EQ(v(lock(10, "%3"), state(ProcessState::dead), t), Verdict::stale);
    EXPECT_EQ(v(lock(10, "$7"), state(ProcessState::dead), t), Verdict::stale);
}

TEST(Verdict, ReasonsNameThePid) {
    auto j = judge_lock(lock(4242), state(ProcessState::dead), tmux_ok({}), k_host);
    EXPECT_NE(j.reason.find("4242"), std::string::npos) << j.reason;
}

} // namespace
} // namespace agentlock
