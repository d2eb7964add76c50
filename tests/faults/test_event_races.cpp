// Races between an owner's death and the daemon's own judgements, at the level of the event
// source (PidWatcher), where they can be set up exactly. Found by the events-only churn soak
// (tests/soak, soak_events_only): a stale lock left until the next full pass.

#include "asio_wait.hpp"
#include "pid_watch.hpp"
#include "test_support.hpp"

#include <agentlock/process_probe.hpp>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace agentlock::daemon {
namespace {

using namespace std::chrono_literals;
using test::Child;

using agentlock::test::run_until;

class EventRaces : public ::testing::Test {
protected:
    std::unique_ptr<PidWatcher> make() {
        return std::make_unique<PidWatcher>(
            m_io, 100, m_probe, [this](const std::set<std::string>& workers, const std::string&) {
                m_reported.insert(workers.begin(), workers.end());
            });
    }
    Owner owner_of(const Child& c) {
        ProcessFacts f = m_probe.probe(c.pid());
        return Owner{c.pid(), f.start_ticks};
    }

    boost::asio::io_context m_io;
    SystemProcessProbe m_probe;
    std::set<std::string> m_reported;
};

// An agent holds w1 (watched), then takes w2 and dies. The daemon's judgement of w2 ran while
// the agent still lived ("alive"), but is applied only after w1's pidfd fired. w2 must be judged
// again: its owner is already gone, and a pidfd that has fired will never fire again.
TEST_F(EventRaces, ALockJudgedAliveJustBeforeItsOwnerDiedIsJudgedAgain) {
    Child agent = test::spawn_sleeper();
    const Owner owner = owner_of(agent);
    auto w = make();
    w->set_owner("/r/w1", owner);
    agent.kill_and_reap();
    ASSERT_TRUE(run_until(m_io, [this] { return m_reported.count("/r/w1") == 1; }));

    // w1's re-check has not come back yet; w2's judgement (made earlier) is applied now.
    w->set_owner("/r/w2", owner);
    EXPECT_TRUE(run_until(
        m_io, [this] { return m_reported.count("/r/w2") == 1; }, 5s))
        << "w2's owner is dead and nothing will tell: it waits for the next full pass";
}

// The same, with the owner not yet reaped when w2's judgement is applied (a zombie).
TEST_F(EventRaces, ALockJudgedAliveJustBeforeItsOwnerBecameAZombieIsJudgedAgain) {
    Child agent = test::spawn_sleeper();
    const Owner owner = owner_of(agent);
    auto w = make();
    w->set_owner("/r/w1", owner);
    ASSERT_EQ(::kill(agent.pid(), SIGKILL), 0);
    ASSERT_TRUE(run_until(m_io, [this] { return m_reported.count("/r/w1") == 1; }));
    w->set_owner("/r/w2", owner);
    EXPECT_TRUE(run_until(
        m_io, [this] { return m_reported.count("/r/w2") == 1; }, 5s));
    agent.kill_and_reap();
}

} // namespace
} // namespace agentlock::daemon
