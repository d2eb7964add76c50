#pragma once
// A small synchronous client for etcd's v3 JSON gateway (/v3/kv/..., /v3/lease/...), over
// Boost.Beast: every request has a deadline, so a hung etcd costs a bounded wait. Not
// thread-safe: one client per thread.

#include <agentlock/fleet_config.hpp>
#include <agentlock/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace agentlock {

/// One key as etcd returned it (key and value decoded from base64).
struct EtcdKeyValue {
    std::string key;
    std::string value;
    std::int64_t lease = 0;
    std::int64_t mod_revision = 0;
};

/// The keys of a range and the store revision it was read at.
struct EtcdRange {
    std::vector<EtcdKeyValue> kvs;
    std::int64_t revision = 0;
};

/// One write of a batch: a put (under `lease`, 0: none) or, with `erase`, a delete of `key`.
struct EtcdWrite {
    std::string key;
    std::string value;
    std::int64_t lease = 0;
    bool erase = false;
};

/// etcd's default limit on the operations of one transaction (--max-txn-ops).
inline constexpr std::size_t k_etcd_max_txn_ops = 128;

/// What a client has sent and received, for the cost figures.
struct EtcdTraffic {
    std::uint64_t requests = 0;
    std::uint64_t bytes_sent = 0;     ///< HTTP request bytes (headers and body)
    std::uint64_t bytes_received = 0; ///< HTTP response bodies
};

/// Standard base64 (RFC 4648), as the gateway carries keys and values.
std::string base64_encode(std::string_view bytes);
/// Decodes standard base64; an Error on a character outside the alphabet.
Result<std::string> base64_decode(std::string_view text);
/// The first key after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string prefix_range_end(std::string_view prefix);

class EtcdClient {
public:
    /// Talks to `fleet.etcd` in turn (sticking to the one that answered last), with
    /// fleet.request_timeout on each request and fleet's TLS files for https:// endpoints.
    explicit EtcdClient(const FleetConfig& fleet);
    ~EtcdClient();
    EtcdClient(const EtcdClient&) = delete;
    EtcdClient& operator=(const EtcdClient&) = delete;

    /// A new lease of `ttl` (whole seconds, rounded up); its ID.
    Result<std::int64_t> grant_lease(std::chrono::milliseconds ttl);
    /// Renews `lease`; its remaining TTL in seconds, 0 when etcd no longer knows it.
    Result<std::int64_t> keep_alive(std::int64_t lease);
    /// Writes `key` under `lease` (0: none).
    Status put(std::string_view key, std::string_view value, std::int64_t lease);
    /// Every key starting with `prefix`.
    Result<EtcdRange> range_prefix(std::string_view prefix);
    /// The one key `key` (kvs empty when absent).
    Result<EtcdRange> get(std::string_view key);
    /// Deletes `key`.
    Status delete_key(std::string_view key);
    /// Applies up to k_etcd_max_txn_ops writes in one transaction (all or none).
    Status write_batch(const std::vector<EtcdWrite>& writes);

    /// The endpoint asked last ("http://host:port").
    const std::string& endpoint() const;
    const EtcdTraffic& traffic() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace agentlock
