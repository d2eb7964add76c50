// Collision detection over one pass's verdicts: one session claimed by two workers, one live PID
// holding two workers.
#include <agentlock/collisions.hpp>

#include <gtest/gtest.h>

namespace agentlock {
namespace {

// The views point at string literals, which outlive every test.
JudgedLock judged(std::string_view worker, std::int64_t pid, std::string_view session,
                  Verdict verdict) {
    JudgedLock j;
    j.worker = worker;
    j.pid = pid;
    j.session_id = session;
    j.verdict = verdict;
    return j;
}

std::vector<Collision> of_kind(const std::vector<Collision>& all, CollisionKind kind) {
    std::vector<Collision> out;
    for (const auto& c : all) {
        if (c.kind == kind) {
            out.push_back(c);
        }
    }
    return out;
}

TEST(Collisions, KindNames) {
    EXPECT_EQ(to_string(CollisionKind::stale), "stale");
    EXPECT_EQ(to_string(CollisionKind::orphaned), "orphaned");
    EXPECT_EQ(to_string(CollisionKind::duplicate_session), "duplicate-session");
    EXPECT_EQ(to_string(CollisionKind::duplicate_pid), "duplicate-pid");
}

TEST(Collisions, SeedsStaleAndOrphanedAreReported) {
    auto all = detect_collisions({judged("/r/a", 11, "s", Verdict::stale),
                                  judged("/r/b", 12, "t", Verdict::orphaned),
                                  judged("/r/c", 13, "u", Verdict::live)});
    auto stale = of_kind(all, CollisionKind::stale);
    ASSERT_EQ(stale.size(), 1u);
    EXPECT_EQ(worker_names(stale[0].workers), std::vector<std::string>{"/r/a"});
    EXPECT_EQ(stale[0].message, "stale lock in /r/a (dead PID 11, session: s)");
    auto orphaned = of_kind(all, CollisionKind::orphaned);
    ASSERT_EQ(orphaned.size(), 1u);
    EXPECT_EQ(orphaned[0].message,
              "orphaned lock in /r/b (session t not found, PID 12 still alive)");
    EXPECT_EQ(all.size(), 2u);
}

TEST(Collisions, OneSessionClaimedByTwoWorkers) {
    auto all = detect_collisions({judged("/r/b", 21, "dup", Verdict::live),
                                  judged("/r/a", 22, "dup", Verdict::held_by_session),
                                  judged("/r/c", 23, "other", Verdict::live)});
    auto dup = of_kind(all, CollisionKind::duplicate_session);
    ASSERT_EQ(dup.size(), 1u);
    EXPECT_EQ(dup[0].session_id, "dup");
    EXPECT_EQ(worker_names(dup[0].workers), (std::vector<std::string>{"/r/a", "/r/b"}));
    EXPECT_NE(dup[0].message.find("dup"), std::string::npos);
}

TEST(Collisions, OneLivePidHoldingTwoWorkers) {
    auto all = detect_collisions({judged("/r/a", 31, "s1", Verdict::live),
                                  judged("/r/b", 31, "s2", Verdict::orphaned),
                                  judged("/r/c", 32, "s3", Verdict::live)});
    auto dup = of_kind(all, CollisionKind::duplicate_pid);
    ASSERT_EQ(dup.size(), 1u);
    EXPECT_EQ(dup[0].pid, 31);
    EXPECT_EQ(worker_names(dup[0].workers), (std::vector<std::string>{"/r/a", "/r/b"}));
}

TEST(Collisions, DeadPidsAndForeignLocksDoNotCollide) {
    // The same dead PID in two stale locks is not one live process holding two workers, and
    // locks of another host or unparseable ones claim nothing here.
    auto all = detect_collisions(
        {judged("/r/a", 41, "", Verdict::stale), judged("/r/b", 41, "", Verdict::stale),
         judged("/r/c", 42, "s", Verdict::foreign), judged("/r/d", 42, "s", Verdict::foreign),
         judged("/r/e", 43, "z", Verdict::held_by_session)});
    EXPECT_TRUE(of_kind(all, CollisionKind::duplicate_pid).empty());
    EXPECT_TRUE(of_kind(all, CollisionKind::duplicate_session).empty());
}

TEST(Collisions, EmptySessionIsNotADuplicate) {
    auto all = detect_collisions(
        {judged("/r/a", 51, "", Verdict::live), judged("/r/b", 52, "", Verdict::live)});
    EXPECT_TRUE(all.empty());
}

TEST(Collisions, OutputIsDeterministic) {
    std::vector<JudgedLock> in{judged("/r/b", 61, "x", Verdict::live),
                               judged("/r/a", 61, "x", Verdict::live)};
    auto first = detect_collisions(in);
    std::swap(in[0], in[1]);
    auto second = detect_collisions(in);
    ASSERT_EQ(first.size(), 2u);
    ASSERT_EQ(second.size(), 2u);
    for (std::size_t i = 0; i < first.size(); ++i) {
        EXPECT_EQ(first[i].kind, second[i].kind);
        EXPECT_EQ(first[i].workers, second[i].workers);
        EXPECT_EQ(first[i].message, second[i].message);
    }
}

} // namespace
} // namespace agentlock
