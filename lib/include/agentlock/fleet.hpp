#pragma once
// Fleet mode: agentlockd daemons on several hosts that share a worker tree tell each other,
// through etcd, which hosts are alive and which workers and sessions their live locks claim.
// A lock written on another host is judged only by that host's presence, never by a PID.

#include <agentlock/etcd_client.hpp>
#include <agentlock/fleet_config.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/log_level.hpp>
#include <agentlock/verdict.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace agentlock {

/// What a daemon publishes about its host under `<prefix>/hosts/<host>`.
struct HostPresence {
    std::string host;
    std::string boot_id;
    std::int64_t pid = 0; ///< the daemon's
    std::string version;
    std::vector<std::string> roots;
    std::string started_at; ///< RFC 3339

    bool operator==(const HostPresence&) const = default;
};

/// A live local lock as published under `<prefix>/claims/<host><worker>`.
struct FleetClaim {
    std::string host;
    std::string worker;
    std::string session_id;
    std::int64_t pid = 0;

    bool operator==(const FleetClaim&) const = default;
};

std::string encode_presence(const HostPresence& presence); ///< one JSON object
std::optional<HostPresence> decode_presence(std::string_view text);
std::string encode_claim(const FleetClaim& claim); ///< one JSON object
std::optional<FleetClaim> decode_claim(std::string_view text);

std::string host_key(const std::string& prefix, const std::string& host);
std::string claim_key(const std::string& prefix, const FleetClaim& claim);

/// Two hosts' live locks claiming one worker or one session.
struct CrossHostCollision {
    std::string kind; ///< "worker" or "session"
    FleetClaim local;
    FleetClaim remote;
};

/// The collisions between this host's claims and other hosts' (claims of `local_host` in
/// `published` are ignored: the local ones are the truth). Sorted, each pair once.
std::vector<CrossHostCollision>
find_cross_host_collisions(const std::string& local_host, const std::vector<FleetClaim>& local,
                           const std::vector<FleetClaim>& published);

using FleetTime = std::chrono::steady_clock::time_point;

/// What this daemon knows of another host's presence.
enum class HostSight {
    live,    ///< its key was there at the last read
    missing, ///< its key has been missing, with etcd answering, for less than host_gone_after
    gone,    ///< missing, with etcd answering at every read, for host_gone_after or longer
    unknown, ///< no recent complete read (etcd not answering, or not yet asked since it failed)
};
std::string_view to_string(HostSight sight);

/// The host-gone clock: for each host asked about, since when its key has been seen missing.
/// Every read that fails restarts every clock: a host cannot be shown gone while etcd could not
/// be seen. Pure (time is passed in); not thread-safe.
class HostGoneClock {
public:
    HostGoneClock(std::chrono::milliseconds gone_after, std::chrono::milliseconds max_age)
        : m_gone_after(gone_after), m_max_age(max_age) {}

    /// A complete read of the host keys at `now`: `live` are the hosts present.
    void saw(FleetTime now, const std::set<std::string>& live);
    /// A read failed at `now`: nothing is known until the next complete read.
    void lost_sight(FleetTime now);

    struct Sight {
        HostSight state = HostSight::unknown;
        std::chrono::milliseconds missing_for{0};
    };
    /// What is known of `host` at `now`; from now on its absence is measured (the first read
    /// after this call starts its clock if it is missing). Unknown when the last complete read
    /// is older than max_age.
    Sight sight_of(const std::string& host, FleetTime now);
    /// Hosts asked about whose state (live, missing, gone) changed at the last read.
    std::vector<std::string> take_changes() { return std::exchange(m_changed, {}); }

private:
    std::chrono::milliseconds m_gone_after;
    std::chrono::milliseconds m_max_age;
    std::optional<FleetTime> m_last_read; ///< unset while etcd is not answering
    std::set<std::string> m_live;
    std::set<std::string> m_watched;
    std::map<std::string, FleetTime> m_missing_since;
    std::map<std::string, HostSight> m_last_state;
    std::vector<std::string> m_changed;
};

/// Receives the fleet's log events (called from the fleet thread).
using FleetLogFn = std::function<void(LogLevel level, std::string event, Fields fields)>;
/// Asks the daemon for a full pass (a host went or came back), with the reason.
using FleetNudgeFn = std::function<void(std::string reason)>;

/// One daemon's membership: a thread that holds the lease, keeps the host key and the claims,
/// reads the other hosts every lease_ttl/3 and their claims (when they changed) at most every
/// 3 * lease_ttl, and logs fleet.unreachable,
/// fleet.recovered, fleet.lease_lost, fleet.host_missing, fleet.host_gone, fleet.host_back and
/// collision.cross_host. Judging never waits on etcd: it reads what the thread last saw.
class FleetMember {
public:
    FleetMember(FleetConfig config, HostPresence presence, FleetLogFn log, FleetNudgeFn nudge);
    ~FleetMember();
    FleetMember(const FleetMember&) = delete;
    FleetMember& operator=(const FleetMember&) = delete;

    void start();
    /// Stops the thread. The lease is not revoked: the keys vanish lease_ttl later, so a quick
    /// restart does not start the other hosts' host-gone clocks.
    void stop();

    /// This host's live claims, as the last pass or re-check knows them; published by the
    /// thread at its next round.
    void set_local_claims(std::vector<FleetClaim> claims);

    /// Judges a lock judge_lock called foreign: foreign while its host is live, missing or
    /// unknown; host-gone once the host has been gone for host_gone_after. With `confirm` (the
    /// reaper's re-check), a host-gone judgement also needs etcd to answer now, on this thread,
    /// that the host key is absent. Thread-safe.
    Judgement judge_foreign(const LockInfo& lock, const Judgement& foreign, bool confirm);

    /// Whether host-gone locks may be removed.
    bool remove_host_gone() const { return m_config.remove_host_gone; }
    /// etcd traffic of the thread's client so far (requests, bytes).
    EtcdTraffic traffic() const;

private:
    void run();
    bool round(FleetTime now, std::string& error);
    bool publish_claims(FleetTime deadline, std::string& error);
    void read_claims(std::int64_t revision, std::string& error, bool& ok);

    const FleetConfig m_config;
    const HostPresence m_presence;
    FleetLogFn m_log;
    FleetNudgeFn m_nudge;

    EtcdClient m_client; // the thread's
    std::int64_t m_lease = 0;
    std::map<std::string, std::string> m_published; // claim key -> value
    std::int64_t m_claims_revision = -1;
    std::optional<FleetTime> m_claims_read_at; // the last complete read of every claim
    std::set<std::string> m_collisions_logged;
    bool m_reachable = true; // until the first failure
    bool m_ever_reached = false;

    mutable std::mutex m_mutex; // guards what follows
    HostGoneClock m_clock;
    std::set<std::string> m_last_hosts; // host keys at the thread's last complete read
    std::vector<FleetClaim> m_local_claims;
    bool m_claims_dirty = false;
    EtcdTraffic m_traffic;
    bool m_stop = false;
    std::condition_variable m_wake;

    std::mutex m_confirm_mutex;
    std::unique_ptr<EtcdClient> m_confirm_client; // the worker thread's, for confirm

    std::thread m_thread;
};

} // namespace agentlock
