#pragma once
// The `fleet` block of agentlockd's config: where etcd is, how this daemon shows it is alive, and
// when another host's locks may be called gone.

#include <agentlock/result.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace boost::json {
class value;
}

namespace agentlock {

/// Fleet mode's settings. Absent from the config: no fleet, no network.
struct FleetConfig {
    /// etcd client URLs, tried in turn: http://host:port or https://host:port.
    std::vector<std::string> etcd{"http://127.0.0.1:2379"};
    /// Every key this daemon reads or writes lies under it; no trailing slash.
    std::string prefix = "/agentlock/v1";
    /// The lease on this host's keys: they vanish this long after the daemon stops renewing.
    std::chrono::milliseconds lease_ttl{std::chrono::seconds(10)};
    /// How long a host's key must have been seen missing, with etcd answering all along,
    /// before its locks are judged host-gone.
    std::chrono::milliseconds host_gone_after{std::chrono::minutes(10)};
    /// Whether host-gone locks are removed (through the reaper) rather than only reported.
    bool remove_host_gone = false;
    /// TLS, named as etcdctl's --cacert, --cert and --key: PEM files; empty: not used.
    std::string cacert;
    std::string cert;
    std::string key;
    /// Time-out of each request to etcd (connect, send, answer).
    std::chrono::milliseconds request_timeout{std::chrono::seconds(2)};

    bool operator==(const FleetConfig&) const = default;
};

/// One etcd client URL, split.
struct EtcdEndpoint {
    bool tls = false;
    std::string host;
    std::string port;

    bool operator==(const EtcdEndpoint&) const = default;
};

/// Splits "http://127.0.0.1:2379" or "https://etcd.example:2379" (an IPv6 host in brackets);
/// nullopt-like Error for anything else (a path, user info, no port).
Result<EtcdEndpoint> parse_etcd_endpoint(const std::string& url);

/// Reads the `fleet` object of config file `origin`. Errors name the file and the key:
/// `config FILE: key "fleet.lease_ttl" ...`.
Result<FleetConfig> parse_fleet_config(const boost::json::value& v, const std::string& origin);

/// Checks a fleet config: endpoints are http:// or https:// URLs with a host and port, https
/// only with TLS files, a cert only with its key, sane durations (lease_ttl at least 2s,
/// host_gone_after at least lease_ttl). Makes the TLS paths absolute.
Status check_fleet_config(FleetConfig& fleet, const std::string& origin);

} // namespace agentlock
