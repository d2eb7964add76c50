// Unit tests of fleet mode's pure parts: the fleet config block, etcd endpoints, base64, the
// records published in etcd, the host-gone clock and cross-host collisions. The thread and the
// etcd client run against a real etcd in tests/fleet.

#include <agentlock/config.hpp>
#include <agentlock/etcd_client.hpp>
#include <agentlock/fleet.hpp>

#include <gtest/gtest.h>

namespace agentlock {
namespace {

using namespace std::chrono_literals;

Result<Config> parse(const std::string& fleet_json) {
    return parse_config(R"({"roots": ["/srv"], "fleet": )" + fleet_json + "}", "/etc/a.json");
}

std::string error_of(const std::string& fleet_json) {
    auto c = parse(fleet_json);
    EXPECT_FALSE(c.ok()) << fleet_json;
    return c ? std::string() : c.error().message;
}

TEST(FleetConfig, AbsentMeansNoFleet) {
    auto c = parse_config(R"({"roots": ["/srv"]})", "/etc/a.json");
    ASSERT_TRUE(c.ok());
    EXPECT_FALSE(c->fleet.has_value());
}

TEST(FleetConfig, DefaultsAndEveryKey) {
    auto d = parse("{}");
    ASSERT_TRUE(d.ok()) << d.error().message;
    ASSERT_TRUE(d->fleet.has_value());
    EXPECT_EQ(d->fleet->etcd, std::vector<std::string>{"http://127.0.0.1:2379"});
    EXPECT_EQ(d->fleet->prefix, "/agentlock/v1");
    EXPECT_EQ(d->fleet->lease_ttl, 10s);
    EXPECT_EQ(d->fleet->host_gone_after, 10min);
    EXPECT_FALSE(d->fleet->remove_host_gone);

    auto c = parse(R"({"etcd": ["https://etcd1:2379", "https://[::1]:2379"], "prefix": "/x/",
        "lease_ttl": "4s", "host_gone_after": "1m", "remove_host_gone": true,
        "request_timeout": "1s", "cacert": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"})");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->fleet->etcd.size(), 2u);
    EXPECT_EQ(c->fleet->prefix, "/x");
    EXPECT_EQ(c->fleet->lease_ttl, 4s);
    EXPECT_EQ(c->fleet->host_gone_after, 1min);
    EXPECT_TRUE(c->fleet->remove_host_gone);
    EXPECT_EQ(c->fleet->request_timeout, 1s);
    EXPECT_EQ(c->fleet->cacert, "/ca.pem");
    EXPECT_EQ(c->fleet->key, "/k.pem");
}

TEST(FleetConfig, ErrorsNameTheFileAndTheKey) {
    EXPECT_EQ(error_of(R"({"lease_tll": "2s"})")
                  .rfind("config /etc/a.json: key \"fleet.lease_tll\" "
                         "is unknown",
                         0),
              0u);
    EXPECT_NE(error_of(R"({"lease_ttl": "1s"})").find("\"fleet.lease_ttl\""), std::string::npos);
    EXPECT_NE(error_of(R"({"lease_ttl": 10})").find("\"fleet.lease_ttl\""), std::string::npos);
    EXPECT_NE(error_of(R"({"host_gone_after": "5s", "lease_ttl": "10s"})")
                  .find("\"fleet.host_gone_after\""),
              std::string::npos);
    EXPECT_NE(error_of(R"({"etcd": []})").find("\"fleet.etcd\""), std::string::npos);
    EXPECT_NE(error_of(R"({"etcd": ["127.0.0.1:2379"]})").find("\"fleet.etcd\""),
              std::string::npos);
    EXPECT_NE(error_of(R"({"etcd": ["http://h:2379/v3"]})").find("\"fleet.etcd\""),
              std::string::npos);
    EXPECT_NE(error_of(R"({"prefix": "x"})").find("\"fleet.prefix\""), std::string::npos);
    EXPECT_NE(error_of(R"({"cacert": "/ca.pem"})").find("\"fleet.cacert\""), std::string::npos);
    // A cert without its key names the missing key.
    EXPECT_NE(error_of(R"({"etcd": ["https://h:1"], "cert": "/c.pem"})").find("\"fleet.key\""),
              std::string::npos);
    EXPECT_NE(error_of(R"({"remove_host_gone": "yes"})").find("\"fleet.remove_host_gone\""),
              std::string::npos);
    EXPECT_NE(error_of(R"("on")").find("\"fleet\""), std::string::npos);
}

TEST(EtcdEndpoint, SplitsSchemeHostAndPort) {
    auto e = parse_etcd_endpoint("https://[fd00::1]:2379/");
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->tls);
    EXPECT_EQ(e->host, "fd00::1");
    EXPECT_EQ(e->port, "2379");
    EXPECT_FALSE(parse_etcd_endpoint("http://h").ok());
    EXPECT_FALSE(parse_etcd_endpoint("http://h:0").ok());
    EXPECT_FALSE(parse_etcd_endpoint("http://u@h:1").ok());
    EXPECT_FALSE(parse_etcd_endpoint("unix:///run/etcd").ok());
}

TEST(Base64, RoundTripsEveryLength) {
    EXPECT_EQ(base64_encode("/a/b"), "L2EvYg==");
    EXPECT_EQ(base64_encode(""), "");
    std::string bytes;
    for (int i = 0; i < 300; ++i) {
        bytes += static_cast<char>(i * 7);
        auto back = base64_decode(base64_encode(bytes));
        ASSERT_TRUE(back.ok());
        EXPECT_EQ(*back, bytes);
    }
    EXPECT_FALSE(base64_decode("a$b=").ok());
}

TEST(EtcdKeys, PrefixRangeEndAndKeys) {
    EXPECT_EQ(prefix_range_end("/p/hosts/"), "/p/hosts0");
    EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
    EXPECT_EQ(host_key("/p", "h1"), "/p/hosts/h1");
    EXPECT_EQ(claim_key("/p", FleetClaim{"h1", "/srv/w", "s", 1}), "/p/claims/h1/srv/w");
}

TEST(FleetRecords, RoundTrip) {
    HostPresence p{"h1", "boot", 42, "1.0", {"/srv/a", "/srv/b"}, "2026-01-01T00:00:00Z"};
    EXPECT_EQ(decode_presence(encode_presence(p)), p);
    FleetClaim c{"h1", "/srv/a/w", "sess", 77};
    EXPECT_EQ(decode_claim(encode_claim(c)), c);
    EXPECT_FALSE(decode_claim("{}").has_value());
    EXPECT_FALSE(decode_claim("not json").has_value());
}

// ---------------------------------------------------------------------------------------------
// The host-gone clock

FleetTime at(int seconds) {
    return FleetTime{} + std::chrono::seconds(1000 + seconds);
}

TEST(HostGoneClock, UnknownUntilAReadMeasuresTheHost) {
    HostGoneClock clock(10s, 5s);
    EXPECT_EQ(clock.sight_of("h2", at(0)).state, HostSight::unknown); // nothing read yet
    clock.saw(at(1), {"h1"});
    EXPECT_EQ(clock.sight_of("h2", at(1)).state, HostSight::missing);
    clock.saw(at(2), {"h1", "h2"});
    EXPECT_EQ(clock.sight_of("h2", at(2)).state, HostSight::live);
}

TEST(HostGoneClock, GoneOnlyAfterTheGracePeriodOfContinuousReads) {
    HostGoneClock clock(10s, 5s);
    clock.sight_of("h2", at(0));
    for (int t = 0; t < 10; t += 2) {
        clock.saw(at(t), {"h1"});
        EXPECT_EQ(clock.sight_of("h2", at(t)).state, HostSight::missing) << t;
    }
    clock.saw(at(10), {"h1"});
    auto s = clock.sight_of("h2", at(10));
    EXPECT_EQ(s.state, HostSight::gone);
    EXPECT_EQ(s.missing_for, 10s);
}

TEST(HostGoneClock, AFailedReadRestartsEveryClock) {
    HostGoneClock clock(10s, 5s);
    clock.sight_of("h2", at(0));
    clock.saw(at(0), {});
    clock.saw(at(8), {});
    clock.lost_sight(at(9));
    EXPECT_EQ(clock.sight_of("h2", at(9)).state, HostSight::unknown);
    clock.saw(at(12), {});
    EXPECT_EQ(clock.sight_of("h2", at(12)).state, HostSight::missing);
    clock.saw(at(21), {});
    EXPECT_EQ(clock.sight_of("h2", at(21)).state, HostSight::missing); // 9 s since etcd came back
    clock.saw(at(22), {});
    EXPECT_EQ(clock.sight_of("h2", at(22)).state, HostSight::gone);
}

TEST(HostGoneClock, AnOldViewIsNoView) {
    HostGoneClock clock(10s, 5s);
    clock.sight_of("h2", at(0));
    clock.saw(at(0), {});
    clock.saw(at(20), {});
    EXPECT_EQ(clock.sight_of("h2", at(20)).state, HostSight::gone);
    // The fleet thread hangs: no read for longer than max_age, so the host is not known gone.
    EXPECT_EQ(clock.sight_of("h2", at(26)).state, HostSight::unknown);
}

TEST(HostGoneClock, AHostThatComesBackStartsOver) {
    HostGoneClock clock(10s, 5s);
    clock.sight_of("h2", at(0));
    clock.saw(at(0), {});
    clock.saw(at(9), {"h2"});
    clock.saw(at(10), {});
    clock.saw(at(19), {});
    EXPECT_EQ(clock.sight_of("h2", at(19)).state, HostSight::missing);
    EXPECT_EQ(clock.take_changes(), (std::vector<std::string>{"h2", "h2"}));
}

// ---------------------------------------------------------------------------------------------
// Cross-host collisions

TEST(CrossHostCollisions, SameWorkerOrSameSessionOnAnotherHost) {
    std::vector<FleetClaim> local = {{"h1", "/srv/a", "s1", 10}, {"h1", "/srv/b", "s2", 11}};
    std::vector<FleetClaim> published = {
        {"h1", "/srv/a", "s1", 10}, // our own: ignored
        {"h2", "/srv/a", "x", 20},  // same worker
        {"h3", "/srv/z", "s2", 30}, // same session
        {"h4", "/srv/q", "", 40},   // no session: nothing shared
    };
    auto found = find_cross_host_collisions("h1", local, published);
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0].kind, "session");
    EXPECT_EQ(found[0].local.worker, "/srv/b");
    EXPECT_EQ(found[0].remote.host, "h3");
    EXPECT_EQ(found[1].kind, "worker");
    EXPECT_EQ(found[1].remote.host, "h2");
    EXPECT_EQ(found[1].remote.pid, 20);
}

TEST(CrossHostCollisions, NoneWithinOneHost) {
    std::vector<FleetClaim> local = {{"h1", "/srv/a", "s", 1}};
    EXPECT_TRUE(find_cross_host_collisions("h1", local, {{"h1", "/srv/b", "s", 2}}).empty());
}

} // namespace
} // namespace agentlock
