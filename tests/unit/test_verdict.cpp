// The one staleness rule as a truth table over (host, owner, session, tmux).
#include "fakes.hpp"

#include <agentlock/verdict.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

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

// Issue 14: a clock step must never make a live owner look like a reused PID. The table below
// crosses the facts that settle reuse without the wall clock (the PID table, ticks seen before)
// with the steps seen, for a Go-style lock (no start ticks, no boot id) whose live owner's start
// time, by today's clock, reads 60 s after acquired_at.

constexpr std::uint64_t k_pid_max = 32768;

PidTableFacts pid_table(std::optional<std::uint64_t> forks,
                        std::optional<Timestamp> boot = k_acquired - 1h,
                        std::optional<std::uint64_t> pid_max = k_pid_max) {
    PidTableFacts t;
    t.forks_since_boot = forks;
    t.pid_max = pid_max;
    t.boot_time = boot;
    return t;
}

// A step of +60 s seen at `at` (after the step).
ClockFacts stepped_at(Timestamp at) {
    ClockFacts c;
    c.record(ClockStep{at, 60s});
    return c;
}

enum class Forks { unset, below, above };
enum class Step { none, after_acquire, before_acquire };
enum class Ticks { none, same, other, other_pid };

struct ReuseCase {
    Forks forks;
    Step step;
    Ticks ticks;
    Verdict expected;
};

std::string case_name(const ReuseCase& c) {
    const char* forks[] = {"ForksUnknown", "ForksBelowPidMax", "ForksAbovePidMax"};
    const char* steps[] = {"NoStep", "StepAfterAcquire", "StepBeforeAcquire"};
    const char* ticks[] = {"NoTicksKnown", "SameTicks", "OtherTicks", "TicksOfAnotherPid"};
    return std::string(forks[static_cast<int>(c.forks)]) + steps[static_cast<int>(c.step)] +
           ticks[static_cast<int>(c.ticks)];
}

Judgement judge_case(const ReuseCase& c) {
    ReuseFacts reuse;
    switch (c.forks) {
    case Forks::unset:
        break;
    case Forks::below:
        reuse.pid_table = pid_table(k_pid_max - k_reserved_pids - 1);
        break;
    case Forks::above:
        reuse.pid_table = pid_table(k_pid_max - k_reserved_pids);
        break;
    }
    switch (c.step) {
    case Step::none:
        break;
    case Step::after_acquire:
        reuse.clock = stepped_at(k_acquired + 30s);
        break;
    case Step::before_acquire:
        reuse.clock = stepped_at(k_acquired - 10s);
        break;
    }
    switch (c.ticks) {
    case Ticks::none:
        break;
    case Ticks::same:
        reuse.known_owner = KnownOwner{10, 500};
        break;
    case Ticks::other:
        reuse.known_owner = KnownOwner{10, 499};
        break;
    case Ticks::other_pid:
        reuse.known_owner = KnownOwner{11, 500};
        break;
    }
    return judge_lock(lock(10), alive(k_acquired + 60s, 500), tmux_ok({}), k_host, reuse);
}

class ReuseTruthTable : public ::testing::TestWithParam<ReuseCase> {};

TEST_P(ReuseTruthTable, Verdict) {
    const ReuseCase& c = GetParam();
    const Judgement j = judge_case(c);
    EXPECT_EQ(j.verdict, c.expected) << j.reason;
    switch (c.expected) {
    case Verdict::stale:
        EXPECT_NE(j.reason.find("was reused"), std::string::npos) << j.reason;
        break;
    case Verdict::unknown:
        EXPECT_NE(j.reason.find("the wall clock was stepped (last by +60.000s"), std::string::npos)
            << j.reason;
        EXPECT_NE(j.reason.find("cannot be compared"), std::string::npos) << j.reason;
        break;
    default:
        EXPECT_EQ(j.reason.find("reused"), std::string::npos) << j.reason;
        break;
    }
}

std::vector<ReuseCase> reuse_cases() {
    std::vector<ReuseCase> cases;
    for (Forks f : {Forks::unset, Forks::below, Forks::above}) {
        for (Step s : {Step::none, Step::after_acquire, Step::before_acquire}) {
            for (Ticks t : {Ticks::none, Ticks::same, Ticks::other, Ticks::other_pid}) {
                Verdict expected = Verdict::stale; // the time rule, as before
                if (t == Ticks::same || f == Forks::below) {
                    expected = Verdict::live; // settled without the wall clock
                } else if (s == Step::after_acquire) {
                    expected = Verdict::unknown; // the two times cannot be compared
                }
                cases.push_back({f, s, t, expected});
            }
        }
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Issue14, ReuseTruthTable, ::testing::ValuesIn(reuse_cases()),
                         [](const ::testing::TestParamInfo<ReuseCase>& p) {
                             return case_name(p.param);
                         });

TEST(ReuseTruthTable, TheTableHoldsEachOutcome) {
    // The table is built by a rule of its own; spot-check it against the issue's words.
    EXPECT_EQ(judge_case({Forks::below, Step::none, Ticks::none, {}}).verdict, Verdict::live);
    EXPECT_EQ(judge_case({Forks::above, Step::after_acquire, Ticks::none, {}}).verdict,
              Verdict::unknown);
    EXPECT_EQ(judge_case({Forks::above, Step::after_acquire, Ticks::same, {}}).verdict,
              Verdict::live);
    EXPECT_EQ(judge_case({Forks::above, Step::after_acquire, Ticks::other, {}}).verdict,
              Verdict::unknown);
    EXPECT_EQ(judge_case({Forks::above, Step::none, Ticks::none, {}}).verdict, Verdict::stale);
    EXPECT_EQ(judge_case({Forks::unset, Step::before_acquire, Ticks::other, {}}).verdict,
              Verdict::stale);
}

TEST(PidTable, TheBoundIsForksPlusTheReservedRangeBelowPidMax) {
    EXPECT_TRUE(pid_table_rules_out_reuse(pid_table(0)));
    EXPECT_TRUE(pid_table_rules_out_reuse(pid_table(k_pid_max - k_reserved_pids - 1)));
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(k_pid_max - k_reserved_pids)));
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(k_pid_max)));
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(~std::uint64_t{0})));
    // A pid_max no larger than the reserved range leaves no room: never "no reuse".
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(0, k_acquired, k_reserved_pids)));
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(0, k_acquired, 0)));
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(std::nullopt)));
    EXPECT_FALSE(pid_table_rules_out_reuse(pid_table(5, k_acquired, std::nullopt)));
}

TEST(PidTable, OnlyALockWrittenThisBootIsSettledByIt) {
    const ProcessFacts owner = alive(k_acquired + 60s);
    ReuseFacts reuse;
    // btime is truncated to the second: a lock within the second after it may predate the boot.
    reuse.pid_table = pid_table(1000, k_acquired);
    EXPECT_EQ(judge_lock(lock(10), owner, tmux_ok({}), k_host, reuse).verdict, Verdict::stale);
    reuse.pid_table = pid_table(1000, k_acquired - 999ms);
    EXPECT_EQ(judge_lock(lock(10), owner, tmux_ok({}), k_host, reuse).verdict, Verdict::stale);
    reuse.pid_table = pid_table(1000, k_acquired - 1s);
    EXPECT_EQ(judge_lock(lock(10), owner, tmux_ok({}), k_host, reuse).verdict, Verdict::live);
    reuse.pid_table = pid_table(1000, std::nullopt);
    EXPECT_EQ(judge_lock(lock(10), owner, tmux_ok({}), k_host, reuse).verdict, Verdict::stale);
    // Our writer's boot id says "this boot" whatever the clocks say.
    LockInfo ours = lock(10);
    ours.boot_id = "boot-1";
    reuse.pid_table = pid_table(1000, k_acquired + 1h);
    EXPECT_EQ(judge_lock(ours, owner, tmux_ok({}), k_host, reuse).verdict, Verdict::live);
    ours.boot_id = "boot-0";
    EXPECT_EQ(judge_lock(ours, owner, tmux_ok({}), k_host, reuse).verdict, Verdict::stale);
}

TEST(PidTable, ReuseProvenByRecordedStartTicksStillCounts) {
    LockInfo l = lock(10);
    l.pid_start_ticks = 400;
    ReuseFacts reuse;
    reuse.pid_table = pid_table(1000);
    reuse.clock = stepped_at(k_acquired + 30s);
    reuse.known_owner = KnownOwner{10, 500};
    const Judgement j = judge_lock(l, alive(k_acquired - 1h, 500), tmux_ok({}), k_host, reuse);
    EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
    EXPECT_NE(j.reason.find("start ticks 500, lock recorded 400"), std::string::npos) << j.reason;
}

TEST(PidTable, NeededOnlyWhenTheStartTimeSaysReused) {
    EXPECT_TRUE(needs_pid_table(lock(10), alive(k_acquired + 60s)));
    EXPECT_FALSE(needs_pid_table(lock(10), alive(k_acquired + 1s)));
    EXPECT_FALSE(needs_pid_table(lock(10), state(ProcessState::dead)));
    EXPECT_FALSE(needs_pid_table(lock(10), state(ProcessState::alive)));
    LockInfo ticks = lock(10);
    ticks.pid_start_ticks = 500;
    EXPECT_FALSE(needs_pid_table(ticks, alive(k_acquired + 60s)));
}

TEST(ClockStepRule, ABackwardStepCoversLocksUpToTheTimeBeforeIt) {
    // Stepped back by 60 s, seen at T: the clock read T + 60 s just before, so a lock acquired
    // at T + 30 s was written before the step.
    ClockFacts c;
    const Timestamp seen = k_acquired - 30s;
    c.record(ClockStep{seen, -60s});
    EXPECT_EQ(c.last_step->before(), k_acquired + 30s);
    EXPECT_TRUE(c.may_predate_a_step(k_acquired));
    EXPECT_TRUE(c.may_predate_a_step(k_acquired + 30s - 1ns));
    EXPECT_FALSE(c.may_predate_a_step(k_acquired + 30s));
    ReuseFacts reuse;
    reuse.clock = c;
    EXPECT_EQ(judge_lock(lock(10), alive(k_acquired + 60s), tmux_ok({}), k_host, reuse).verdict,
              Verdict::unknown);
}

TEST(ClockStepRule, EveryStepSeenCountsNotOnlyTheLast) {
    ClockFacts c;
    c.record(ClockStep{k_acquired + 10s, 5s});
    c.record(ClockStep{k_acquired - 1h, -2h}); // a later step back: it read k_acquired + 1h before
    EXPECT_TRUE(c.may_predate_a_step(k_acquired + 30min));
    c = ClockFacts{};
    c.record(ClockStep{k_acquired + 10s, 5s});
    c.record(ClockStep{k_acquired - 1h, 1s}); // seen "earlier" by the stepped clock
    EXPECT_EQ(*c.stepped_until, k_acquired + 10s);
    EXPECT_TRUE(c.may_predate_a_step(k_acquired));
    EXPECT_FALSE(ClockFacts{}.may_predate_a_step(k_acquired));
}

TEST(ClockStepRule, AnUnknownOwnerStaysUnknownWithASession) {
    ReuseFacts reuse;
    reuse.clock = stepped_at(k_acquired + 30s);
    const Judgement j =
        judge_lock(lock(10, "s1"), alive(k_acquired + 60s), tmux_ok({}), k_host, reuse);
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
}

// --- identity over time: tmux's ids and names against acquired_at ----------------------------
//
// Gastown's pattern throughout: the owner (`gt prime`) is dead and the lock lives by its pane.

const ProcessFacts k_dead = state(ProcessState::dead);

// One server, started at `started`, with pane %3 in session $1 "gt-w01" created at `created`.
TmuxFacts gastown_server(Timestamp started, Timestamp created, bool pane_dead = false) {
    TmuxFacts t;
    t.state = TmuxState::ok;
    t.server_started = started;
    t.server_pid = 4000;
    TmuxSession s;
    s.id = "$1";
    s.name = "gt-w01";
    s.created = created;
    s.panes = 1;
    s.dead_panes = pane_dead ? 1 : 0;
    t.sessions.emplace(s.id, s);
    TmuxPane p;
    p.id = "%3";
    p.session_id = "$1";
    p.pid = 5000;
    p.dead = pane_dead;
    t.panes.emplace(p.id, p);
    t.session_ids = {"$1"};
    t.session_names = {"gt-w01"};
    t.pane_ids = {"%3"};
    return t;
}

const TmuxFacts k_old_server = gastown_server(k_acquired - 1h, k_acquired - 30min);

Judgement judge_with(const LockInfo& l, const ProcessFacts& p, const TmuxFacts& t,
                     TmuxEvidence evidence = {}, ReuseFacts reuse = {}) {
    return judge_lock(l, p, t, k_host, reuse, evidence);
}

bool says(const Judgement& j, const std::string& text) {
    return j.reason.find(text) != std::string::npos;
}

TEST(TmuxIdentity, AnOlderServerSessionAndPaneHoldTheLock) {
    for (const char* recorded : {"%3", "$1", "gt-w01"}) {
        const Judgement j = judge_with(lock(10, recorded), k_dead, k_old_server);
        EXPECT_EQ(j.verdict, Verdict::held_by_session) << recorded << ": " << j.reason;
    }
}

// tmux numbers panes and sessions from %0 and $0 again after a restart: the new server's %3 is
// not the pane that took the lock.
TEST(TmuxIdentity, APaneOfAServerStartedAfterTheLockIsAReusedId) {
    const TmuxFacts restarted = gastown_server(k_acquired + 2h, k_acquired + 2h);
    for (const char* recorded : {"%3", "$1"}) {
        const Judgement j = judge_with(lock(10, recorded), k_dead, restarted);
        EXPECT_EQ(j.verdict, Verdict::stale) << recorded << ": " << j.reason;
        EXPECT_TRUE(says(j, "not the one that took it")) << j.reason;
    }
    EXPECT_TRUE(says(judge_with(lock(10, "%3"), k_dead, restarted), "tmux server"));
    // A live owner's lock is kept whatever its session: orphaned.
    EXPECT_EQ(judge_with(lock(10, "%3"), alive(), restarted).verdict, Verdict::orphaned);
}

// gastown recreates its sessions under the same names.
TEST(TmuxIdentity, ASessionRecreatedUnderTheSameNameIsNotTheHolder) {
    const TmuxFacts recreated = gastown_server(k_acquired - 1h, k_acquired + 10min);
    const Judgement j = judge_with(lock(10, "gt-w01"), k_dead, recreated);
    EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
    EXPECT_TRUE(says(j, "session gt-w01 ($1) was created at")) << j.reason;
    // The pane id is the server's, never reused while it runs: a pane of the old server holds.
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, recreated).verdict, Verdict::held_by_session);
}

// A launcher writes the lock, then creates the session: within the slack it is the holder.
TEST(TmuxIdentity, TheSlackCoversALauncherThatCreatesTheSessionAfterTheLock) {
    const TmuxFacts launched = gastown_server(k_acquired + 20s, k_acquired + 30s);
    for (const char* recorded : {"%3", "$1", "gt-w01"}) {
        EXPECT_EQ(judge_with(lock(10, recorded), k_dead, launched).verdict,
                  Verdict::held_by_session)
            << recorded;
    }
    // The slack is the config's: 10 s makes the same session too late.
    TmuxEvidence strict;
    strict.created_slack = 10s;
    for (const char* recorded : {"%3", "$1", "gt-w01"}) {
        const Judgement j = judge_with(lock(10, recorded), k_dead, launched, strict);
        EXPECT_EQ(j.verdict, Verdict::stale) << recorded << ": " << j.reason;
        EXPECT_TRUE(says(j, "10s of slack")) << j.reason;
    }
    // Exactly at the slack is still within it.
    const TmuxFacts at_slack = gastown_server(k_acquired + 60s, k_acquired + 60s);
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, at_slack).verdict, Verdict::held_by_session);
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, at_slack).verdict, Verdict::held_by_session);
    const TmuxFacts past_slack = gastown_server(k_acquired + 61s, k_acquired + 61s);
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, past_slack).verdict, Verdict::stale);
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, past_slack).verdict, Verdict::stale);
}

TEST(TmuxIdentity, AnUnreadableTimeIsUnknownNeverStale) {
    TmuxFacts t = k_old_server;
    t.server_started.reset();
    Judgement j = judge_with(lock(10, "%3"), k_dead, t);
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_TRUE(says(j, "start time is unreadable")) << j.reason;
    // A session's own creation time does not need the server's.
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, t).verdict, Verdict::held_by_session);

    t = k_old_server;
    t.sessions.at("$1").created.reset();
    j = judge_with(lock(10, "gt-w01"), k_dead, t);
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_TRUE(says(j, "creation time is unreadable")) << j.reason;
    EXPECT_EQ(judge_with(lock(10, "$1"), k_dead, t).verdict, Verdict::unknown);
}

// The times are the wall clock's; a step seen since the lock was written makes them
// incomparable, so "created later" is not concluded.
TEST(TmuxIdentity, AStepSeenSinceTheLockMakesCreatedLaterUnknown) {
    ReuseFacts reuse;
    reuse.clock.record(ClockStep{k_acquired + 1h, -30min});
    const TmuxFacts restarted = gastown_server(k_acquired + 2h, k_acquired + 2h);
    for (const char* recorded : {"%3", "$1", "gt-w01"}) {
        const Judgement j = judge_with(lock(10, recorded), k_dead, restarted, {}, reuse);
        EXPECT_EQ(j.verdict, Verdict::unknown) << recorded << ": " << j.reason;
        EXPECT_TRUE(says(j, "wall clock was stepped")) << j.reason;
    }
    // A step before the lock was written changes nothing.
    ReuseFacts earlier;
    earlier.clock.record(ClockStep{k_acquired - 1h, 5min});
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, restarted, {}, earlier).verdict, Verdict::stale);
}

// tmux reads its times from the clock before it answers: a server start or session creation
// later than the moment its answer was read is not believed, however it compares with the lock.
TEST(TmuxIdentity, ATimeLaterThanTheListingIsNotBelievedAndDecidesNothing) {
    TmuxFacts lying = gastown_server(k_acquired + 1h, k_acquired - 30min);
    lying.listed_at = k_acquired + 10min;
    Judgement j = judge_with(lock(10, "%3"), k_dead, lying);
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_TRUE(says(j, "pane %3 exists, but its tmux server's start time")) << j.reason;
    EXPECT_TRUE(says(j, "later than tmux was asked")) << j.reason;
    EXPECT_EQ(judge_with(lock(10, "%3"), alive(), lying).verdict, Verdict::unknown);
    // The session's own creation time is true: a lock by session is judged by it.
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, lying).verdict, Verdict::held_by_session);

    lying = gastown_server(k_acquired - 1h, k_acquired + 1h);
    lying.listed_at = k_acquired + 10min;
    for (const char* recorded : {"$1", "gt-w01"}) {
        j = judge_with(lock(10, recorded), k_dead, lying);
        EXPECT_EQ(j.verdict, Verdict::unknown) << recorded << ": " << j.reason;
        EXPECT_TRUE(says(j, "session gt-w01 ($1) exists, but its creation time")) << j.reason;
    }
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, lying).verdict, Verdict::held_by_session);

    // Within the tolerance the other rules decide: a server restarted since is not the holder.
    TmuxFacts restarted = gastown_server(k_acquired + 2h, k_acquired + 2h);
    restarted.listed_at = k_acquired + 2h - k_tmux_time_tolerance;
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, restarted).verdict, Verdict::stale);
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, restarted).verdict, Verdict::stale);
    restarted.listed_at = k_acquired + 2h - k_tmux_time_tolerance - 1s;
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, restarted).verdict, Verdict::unknown);
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, restarted).verdict, Verdict::unknown);
    // Facts that do not say when they were read (fakes, hand-built answers) keep the old rule.
    restarted.listed_at.reset();
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, restarted).verdict, Verdict::stale);
}

// --- dead panes ------------------------------------------------------------------------------

TEST(TmuxDeadPanes, ADeadPaneDoesNotHold) {
    const TmuxFacts t = gastown_server(k_acquired - 1h, k_acquired - 30min, true);
    Judgement j = judge_with(lock(10, "%3"), k_dead, t);
    EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
    EXPECT_TRUE(says(j, "pane %3 is dead")) << j.reason;
    j = judge_with(lock(10, "%3"), alive(), t);
    EXPECT_EQ(j.verdict, Verdict::orphaned) << j.reason;
}

TEST(TmuxDeadPanes, ASessionWhosePanesAreAllDeadDoesNotHold) {
    TmuxFacts t = gastown_server(k_acquired - 1h, k_acquired - 30min, true);
    for (const char* recorded : {"$1", "gt-w01"}) {
        const Judgement j = judge_with(lock(10, recorded), k_dead, t);
        EXPECT_EQ(j.verdict, Verdict::stale) << recorded << ": " << j.reason;
        EXPECT_TRUE(says(j, "every pane of session gt-w01 ($1) is dead")) << j.reason;
    }
    // One live pane of two: held.
    t.sessions.at("$1").panes = 2;
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, t).verdict, Verdict::held_by_session);
    // One dead, one whose state tmux did not say: unknown.
    t.sessions.at("$1").unread_panes = 1;
    EXPECT_EQ(judge_with(lock(10, "gt-w01"), k_dead, t).verdict, Verdict::unknown);
}

TEST(TmuxDeadPanes, AnUnreadableDeadFlagIsUnknown) {
    TmuxFacts t = k_old_server;
    t.panes.at("%3").dead.reset();
    const Judgement j = judge_with(lock(10, "%3"), k_dead, t);
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
}

// A name may match a session while the same text is also a pane id: any match that holds keeps
// the lock.
TEST(TmuxDeadPanes, AnyMatchThatHoldsKeepsTheLock) {
    TmuxFacts t = gastown_server(k_acquired - 1h, k_acquired - 30min);
    TmuxSession odd;
    odd.id = "$2";
    odd.name = "%3";
    odd.created = k_acquired + 1h; // created later: not the holder
    odd.panes = 1;
    t.sessions.emplace(odd.id, odd);
    t.session_ids.insert("$2");
    t.session_names.insert("%3");
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, t).verdict, Verdict::held_by_session);
    t.panes.at("%3").dead = true;
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, t).verdict, Verdict::stale);
}

// A session listed without its details (a hand-built answer) is not judged by guesswork.
TEST(TmuxDeadPanes, AListingWithoutDetailsIsUnknown) {
    TmuxFacts t;
    t.state = TmuxState::ok;
    t.pane_ids = {"%3"};
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, t).verdict, Verdict::unknown);
}

TEST(TmuxDeadPanes, HasLiveIsWhatAHeldLockWaitsOn) {
    TmuxFacts t = gastown_server(k_acquired - 1h, k_acquired - 30min);
    EXPECT_TRUE(t.has_live("%3"));
    EXPECT_TRUE(t.has_live("$1"));
    EXPECT_TRUE(t.has_live("gt-w01"));
    EXPECT_FALSE(t.has_live("%4"));
    t = gastown_server(k_acquired - 1h, k_acquired - 30min, true);
    EXPECT_TRUE(t.has("%3"));
    EXPECT_FALSE(t.has_live("%3"));
    EXPECT_FALSE(t.has_live("$1"));
    EXPECT_FALSE(t.has_live("gt-w01"));
}

// --- before this boot ------------------------------------------------------------------------

ReuseFacts booted_at(Timestamp btime) {
    ReuseFacts r;
    r.pid_table.boot_time = btime;
    return r;
}

TEST(BootRule, OurLockFromAnotherBootIsStaleWhateverTmuxSays) {
    LockInfo l = lock(10, "%3");
    l.boot_id = "boot-0";
    for (const TmuxFacts& t : {k_old_server, tmux_state(TmuxState::unknown, "no socket")}) {
        const Judgement j = judge_with(l, alive(), t);
        EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
        EXPECT_TRUE(says(j, "written before the last reboot (boot id boot-0, now boot-1)"))
            << j.reason;
    }
    // The same boot id: this boot, whatever btime reads.
    l.boot_id = "boot-1";
    EXPECT_EQ(judge_with(l, k_dead, k_old_server, {}, booted_at(k_acquired + 1h)).verdict,
              Verdict::held_by_session);
}

// A Go lock has no boot id: acquired_at against btime, with a margin.
TEST(BootRule, AGoLockAcquiredBeforeTheBootIsStaleWhateverTmuxSays) {
    const ReuseFacts boot = booted_at(k_acquired + 1h);
    for (const TmuxFacts& t : {tmux_state(TmuxState::unknown, "error connecting (No such file)"),
                               gastown_server(k_acquired + 1h + 10s, k_acquired + 1h + 20s)}) {
        const Judgement j = judge_with(lock(10, "%3"), k_dead, t, {}, boot);
        EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
        EXPECT_TRUE(says(j, "before this boot")) << j.reason;
    }
    // A live PID is not the owner either: no process survives a reboot.
    EXPECT_EQ(judge_with(lock(10), alive(k_acquired + 2h), tmux_state(TmuxState::unknown), {}, boot)
                  .verdict,
              Verdict::stale);
}

TEST(BootRule, WithinTheMarginTheOtherRulesDecide) {
    const TmuxFacts unknown = tmux_state(TmuxState::unknown, "no socket");
    EXPECT_EQ(
        judge_with(lock(10, "%3"), k_dead, unknown, {}, booted_at(k_acquired + k_boot_time_margin))
            .verdict,
        Verdict::unknown);
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, unknown, {},
                         booted_at(k_acquired + k_boot_time_margin + 1s))
                  .verdict,
              Verdict::stale);
    // No boot time read: no boot rule.
    EXPECT_EQ(judge_with(lock(10, "%3"), k_dead, unknown).verdict, Verdict::unknown);
}

TEST(BootRule, AStepSeenMakesItUnknown) {
    ReuseFacts boot = booted_at(k_acquired + 1h);
    boot.clock.record(ClockStep{k_acquired + 2h, 1h});
    const Judgement j =
        judge_with(lock(10, "%3"), k_dead, tmux_state(TmuxState::unknown, "x"), {}, boot);
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_TRUE(says(j, "wall clock was stepped")) << j.reason;
}

// A running server started this boot; when its start reads before the boot too, the clock has
// moved forward since (a host without a real-time clock, synced after the agents started).
TEST(BootRule, ARunningServerThatReadsOlderThanTheBootMakesItUnknown) {
    const Judgement j =
        judge_with(lock(10, "%3"), k_dead, k_old_server, {}, booted_at(k_acquired + 1h));
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_TRUE(says(j, "the wall clock has moved")) << j.reason;
}

TEST(BootRule, NeededForLocalLocksWithoutADecidingBootId) {
    LockInfo l = lock(10, "%3");
    EXPECT_TRUE(needs_boot_time(l, k_host));
    l.boot_id = "boot-1";
    EXPECT_FALSE(needs_boot_time(l, k_host));
    EXPECT_TRUE(needs_boot_time(l, HostFacts{"here", ""}));
    EXPECT_FALSE(needs_boot_time(lock(10, "%3", "elsewhere"), k_host));
}

// --- the tmux server the lock records (our writer, from $TMUX) -------------------------------

LockInfo recorded_lock(std::int64_t server_pid, std::string socket = "/tmp/tmux-0/town") {
    LockInfo l = lock(10, "%3");
    l.tmux_server_pid = server_pid;
    l.tmux_socket = std::move(socket);
    return l;
}

TmuxEvidence server_probe(ProcessState s) {
    TmuxEvidence e;
    e.recorded_server = state(s);
    return e;
}

// A lock that records its server's socket but not its PID: what that socket says decides.
LockInfo socket_only_lock() {
    LockInfo l = lock(10, "%3");
    l.tmux_socket = "/tmp/tmux-0/town";
    return l;
}

TEST(RecordedServer, ItsServerGoneMeansItsIdsHoldNothing) {
    for (const TmuxFacts& t : {k_old_server, tmux_state(TmuxState::unknown, "no socket"),
                               tmux_state(TmuxState::no_server)}) {
        const Judgement j =
            judge_with(recorded_lock(4000), k_dead, t, server_probe(ProcessState::dead));
        EXPECT_EQ(j.verdict, Verdict::stale) << j.reason;
        EXPECT_TRUE(says(j, "the lock's tmux server (PID 4000, socket /tmp/tmux-0/town) is gone"))
            << j.reason;
    }
    EXPECT_EQ(
        judge_with(recorded_lock(4000), k_dead, k_old_server, server_probe(ProcessState::zombie))
            .verdict,
        Verdict::stale);
}

TEST(RecordedServer, ItsOwnAnswerDecides) {
    TmuxFacts t = k_old_server;
    t.socket_path = "/tmp/tmux-0/town";
    EXPECT_EQ(judge_with(recorded_lock(4000), k_dead, t, server_probe(ProcessState::alive)).verdict,
              Verdict::held_by_session);
    // Its start time still counts: a reused PID of a newer server.
    const TmuxFacts newer = gastown_server(k_acquired + 2h, k_acquired + 2h);
    EXPECT_EQ(
        judge_with(recorded_lock(4000), k_dead, newer, server_probe(ProcessState::alive)).verdict,
        Verdict::stale);
}

TEST(RecordedServer, AnotherServersAnswerIsNoEvidence) {
    TmuxFacts other = k_old_server;
    other.server_pid = 4100;
    for (ProcessState s : {ProcessState::alive, ProcessState::unknown}) {
        const Judgement j = judge_with(recorded_lock(4000), k_dead, other, server_probe(s));
        EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    }
    // Not probed at all (a caller without the evidence): never taken as gone.
    other.pane_ids.clear();
    other.panes.clear();
    EXPECT_EQ(judge_with(recorded_lock(4000), k_dead, other).verdict, Verdict::unknown);
    // The same socket, served by another PID, while the recorded one may still run.
    other.socket_path = "/tmp/tmux-0/town";
    const Judgement j =
        judge_with(recorded_lock(4000), k_dead, other, server_probe(ProcessState::alive));
    EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
    EXPECT_TRUE(says(j, "its socket is now served by PID 4100")) << j.reason;
}

// tmux says "no current target" for a server without sessions: an empty listing that names no
// server. It cannot be matched with the server the lock records while that one's PID lives.
TEST(RecordedServer, AnAnswerThatNamesNoServerIsNotItsAnswer) {
    TmuxFacts empty;
    empty.state = TmuxState::ok;
    empty.socket_path = "/tmp/tmux-0/town";
    for (const TmuxEvidence& e :
         {server_probe(ProcessState::alive), server_probe(ProcessState::unknown), TmuxEvidence{}}) {
        const Judgement j = judge_with(recorded_lock(4000), k_dead, empty, e);
        EXPECT_EQ(j.verdict, Verdict::unknown) << j.reason;
        EXPECT_TRUE(says(j, "the lock's tmux server (PID 4000, socket /tmp/tmux-0/town) was not "
                            "seen dead, and the answer from its socket names no server PID"))
            << j.reason;
    }
    EXPECT_EQ(
        judge_with(recorded_lock(4000), k_dead, empty, server_probe(ProcessState::dead)).verdict,
        Verdict::stale);
    // A listing without #{pid} (a tmux that does not print it) is no better.
    TmuxFacts unnamed = k_old_server;
    unnamed.server_pid.reset();
    unnamed.socket_path = "/tmp/tmux-0/town";
    EXPECT_EQ(
        judge_with(recorded_lock(4000), k_dead, unnamed, server_probe(ProcessState::alive)).verdict,
        Verdict::unknown);
    // A lock that records no server PID is judged by what the socket says.
    const LockInfo socket_only = socket_only_lock();
    EXPECT_EQ(judge_with(socket_only, k_dead, empty).verdict, Verdict::stale);
}

TEST(RecordedServer, NoServerOnItsSocketWhileItsPidLivesIsUnknown) {
    TmuxFacts none = tmux_state(TmuxState::no_server, "no server running on /tmp/tmux-0/town");
    none.socket_path = "/tmp/tmux-0/town";
    EXPECT_EQ(
        judge_with(recorded_lock(4000), k_dead, none, server_probe(ProcessState::alive)).verdict,
        Verdict::unknown);
    EXPECT_EQ(
        judge_with(recorded_lock(4000), k_dead, none, server_probe(ProcessState::dead)).verdict,
        Verdict::stale);
    // A socket without a PID recorded: no server there is no session there.
    const LockInfo socket_only = socket_only_lock();
    EXPECT_EQ(judge_with(socket_only, k_dead, none).verdict, Verdict::stale);
}

} // namespace
} // namespace agentlock
