// Unit tests of agentlockd's sd_notify messages, received on a socket the test owns.

#include "daemon_test_support.hpp"
#include "notify.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

namespace agentlock::daemon {
namespace {

class NotifyTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_socket = std::make_unique<test::NotifySocket>(m_tmp.sub("notify.sock"));
        ::setenv("NOTIFY_SOCKET", m_socket->path().c_str(), 1);
    }
    void TearDown() override {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
    }

    agentlock::test::TempDir m_tmp;
    std::unique_ptr<test::NotifySocket> m_socket;
    Notifier m_notifier;
};

TEST_F(NotifyTest, EachMessageArrives) {
    EXPECT_TRUE(m_notifier.ready("pass 1: 3 locks"));
    EXPECT_TRUE(m_notifier.status("pass 2: 4 locks"));
    EXPECT_TRUE(m_notifier.reloading());
    EXPECT_TRUE(m_notifier.watchdog());
    EXPECT_TRUE(m_notifier.stopping());
    ASSERT_TRUE(m_socket->wait_for("STOPPING=1"));
    auto got = m_socket->messages();
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0], "READY=1\nSTATUS=pass 1: 3 locks");
    EXPECT_EQ(got[1], "STATUS=pass 2: 4 locks");
    EXPECT_EQ(got[2].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << got[2];
    EXPECT_EQ(got[3], "WATCHDOG=1");
    EXPECT_EQ(got[4], "STOPPING=1");
}

TEST_F(NotifyTest, MonotonicUsecIsNow) {
    timespec before{};
    ASSERT_EQ(::clock_gettime(CLOCK_MONOTONIC, &before), 0);
    ASSERT_TRUE(m_notifier.reloading());
    timespec after{};
    ASSERT_EQ(::clock_gettime(CLOCK_MONOTONIC, &after), 0);
    ASSERT_TRUE(m_socket->wait_for("RELOADING=1"));
    const std::string msg = m_socket->messages().at(0);
    const auto usec = std::stoull(msg.substr(msg.find("MONOTONIC_USEC=") + 15));
    auto to_usec = [](const timespec& t) {
        return static_cast<unsigned long long>(t.tv_sec) * 1000000ULL +
               static_cast<unsigned long long>(t.tv_nsec) / 1000ULL;
    };
    EXPECT_GE(usec, to_usec(before));
    EXPECT_LE(usec, to_usec(after));
}

TEST_F(NotifyTest, StatusIsOneLine) {
    ASSERT_TRUE(m_notifier.status("two\nlines\tand tab"));
    ASSERT_TRUE(m_socket->wait_for("STATUS="));
    EXPECT_EQ(m_socket->messages().at(0), "STATUS=two lines and tab");
    EXPECT_EQ(one_line("a\r\nb"), "a  b");
}

TEST_F(NotifyTest, NoSocketIsNotAnError) {
    ::unsetenv("NOTIFY_SOCKET");
    EXPECT_TRUE(m_notifier.ready("x"));
    EXPECT_TRUE(m_notifier.last_error().empty());
}

TEST_F(NotifyTest, ABrokenSocketIsReported) {
    ::setenv("NOTIFY_SOCKET", m_tmp.sub("nobody-listens.sock").c_str(), 1);
    EXPECT_FALSE(m_notifier.status("x"));
    EXPECT_NE(m_notifier.last_error().find("sd_notify"), std::string::npos);
}

TEST_F(NotifyTest, WatchdogOnlyForThisProcess) {
    EXPECT_FALSE(Notifier::watchdog_timeout());
    ::setenv("WATCHDOG_USEC", "200000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    auto timeout = Notifier::watchdog_timeout();
    ASSERT_TRUE(timeout);
    EXPECT_EQ(timeout->count(), 200000);
    ::setenv("WATCHDOG_PID", "1", 1);
    EXPECT_FALSE(Notifier::watchdog_timeout());
}

} // namespace
} // namespace agentlock::daemon
