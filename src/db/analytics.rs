//! Aggregates behind the dashboard's stats and charts, read from the hourly rollups
//! (`migrations/*/0002_rollups.sql`, kept in step by `rollups.rs`), so a chart over a million
//! records reads a few thousand rows. The same SQL runs on both backends: times are epoch
//! milliseconds, so buckets are integer division and hours of the day a modulo (UTC); windows count
//! whole hours. Percentiles are exact: the rollup keeps a per-hour histogram of latencies in
//! milliseconds, ranked in Rust (SQLite has no percentile function).

use std::collections::BTreeMap;

use super::{KeyCount, Store, StoreError, with_pool};

/// Outcomes that mean the member was let speak because they are subscribed.
pub fn is_success(outcome: &str) -> bool {
    crate::domain::Outcome::SUCCESS
        .iter()
        .any(|o| o.as_str() == outcome)
}

/// One labelled count in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct BucketCount {
    pub bucket: i64,
    pub key: String,
    pub count: i64,
}

/// Latency percentiles of one bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct LatencyPoint {
    pub bucket: i64,
    pub count: i64,
    pub p50: i64,
    pub p95: i64,
    pub p99: i64,
}

impl Store {
    /// Counts per bucket and `column` in the hours overlapping `[from, to)`.
    pub async fn bucketed_counts(
        &self,
        table: Table,
        column: Column,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<BucketCount>, StoreError> {
        let (rollup, key) = column.source(table);
        let sql = format!(
            "SELECT (hour / $1) * $1 AS bucket, {key} AS key, CAST(SUM(count) AS BIGINT) AS count FROM {rollup} \
             WHERE hour >= $2 AND hour < $3 GROUP BY 1, 2 ORDER BY 1, 2"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, BucketCount>(sqlx::AssertSqlSafe(sql))
            .bind(bucket_ms)
            .bind(hour_of(from))
            .bind(to)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Counts per `column` in the hours overlapping `[from, to)`, most frequent first.
    pub async fn counts_by(
        &self,
        table: Table,
        column: Column,
        from: i64,
        to: i64,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let (rollup, key) = column.source(table);
        let (rollup, time, start) = match column {
            Column::LatencyBucket => grain(from, to, 0),
            _ => (rollup, "hour", hour_of(from)),
        };
        let sql = format!(
            "SELECT {key} AS key, CAST(SUM(count) AS BIGINT) AS count FROM {rollup} WHERE {time} >= $1 AND {time} < $2 \
             GROUP BY 1 ORDER BY 2 DESC, 1"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, KeyCount>(sqlx::AssertSqlSafe(sql))
            .bind(start)
            .bind(to)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Exact p50/p95/p99 of verification latency per bucket, from the hourly histograms.
    pub async fn latency_trend(
        &self,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<LatencyPoint>, StoreError> {
        let (table, time, start) = grain(from, to, bucket_ms);
        let sql = format!(
            "SELECT ({time} / $1) * $1 AS bucket, latency_ms, CAST(SUM(count) AS BIGINT) \
             FROM {table} WHERE {time} >= $2 AND {time} < $3 GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (i64, i64, i64)>(sqlx::AssertSqlSafe(sql))
            .bind(bucket_ms)
            .bind(start)
            .bind(to)
            .fetch_all(pool)
            .await)?;
        let mut buckets: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
        for (bucket, latency, count) in rows {
            buckets.entry(bucket).or_default().push((latency, count));
        }
        Ok(buckets
            .into_iter()
            .map(|(bucket, histogram)| {
                let count = histogram.iter().map(|(_, n)| n).sum();
                LatencyPoint {
                    bucket,
                    count,
                    p50: percentile(&histogram, count, 0.50),
                    p95: percentile(&histogram, count, 0.95),
                    p99: percentile(&histogram, count, 0.99),
                }
            })
            .collect())
    }

    /// Count and exact percentiles of verification latency over the whole window.
    pub async fn latency_summary(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Option<LatencyPoint>, StoreError> {
        // A bucket wider than any timestamp puts every row in bucket 0.
        Ok(self
            .latency_trend(from, to, i64::MAX)
            .await?
            .into_iter()
            .next())
    }

    /// Average verification latency in the window, in milliseconds.
    pub async fn average_latency(&self, from: i64, to: i64) -> Result<Option<f64>, StoreError> {
        let sql = "SELECT CAST(COALESCE(SUM(latency_sum), 0) AS BIGINT), CAST(COALESCE(SUM(count), 0) AS BIGINT) \
                   FROM verification_hourly WHERE hour >= $1 AND hour < $2";
        let (sum, count) = with_pool!(self, pool => sqlx::query_as::<_, (i64, i64)>(sql)
            .bind(hour_of(from))
            .bind(to)
            .fetch_one(pool)
            .await)?;
        Ok((count > 0).then(|| sum as f64 / count as f64))
    }

    /// The groups with the most verifications in the window, with their titles.
    pub async fn top_groups(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let (table, time, start) = grain(from, to, 0);
        let table = table.replace("latency", "group");
        let sql = format!(
            "SELECT v.group_id, COALESCE(g.title, ''), v.n FROM \
             (SELECT group_id, CAST(SUM(count) AS BIGINT) AS n FROM {table} \
              WHERE {time} >= $1 AND {time} < $2 GROUP BY group_id ORDER BY n DESC, group_id LIMIT $3) v \
             LEFT JOIN protected_groups g ON g.id = v.group_id ORDER BY v.n DESC, v.group_id"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, (i64, String, i64)>(sqlx::AssertSqlSafe(sql))
            .bind(start)
            .bind(to)
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Events of `kind` per bucket in `[from, to)` (joins, leaves).
    pub async fn events_per_bucket(
        &self,
        kinds: &[&str],
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<BucketCount>, StoreError> {
        let sql = "SELECT (created_at / $1) * $1 AS bucket, kind AS key, COUNT(*) AS count FROM events \
                   WHERE created_at >= $2 AND created_at < $3 AND (kind = $4 OR kind = $5) GROUP BY 1, 2 ORDER BY 1, 2";
        let first = kinds.first().copied().unwrap_or("");
        let second = kinds.get(1).copied().unwrap_or(first);
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, BucketCount>(sql)
            .bind(bucket_ms)
            .bind(from)
            .bind(to)
            .bind(first)
            .bind(second)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Groups by health and by enabled, bots by run state.
    pub async fn fleet_counts(&self) -> Result<FleetCounts, StoreError> {
        Ok(with_pool!(self, pool => {
            let health = sqlx::query_as::<_, KeyCount>(
                "SELECT health AS key, COUNT(*) AS count FROM protected_groups GROUP BY health ORDER BY health",
            ).fetch_all(pool).await?;
            let enabled = sqlx::query_as::<_, (bool, i64)>(
                "SELECT enabled, COUNT(*) FROM protected_groups GROUP BY enabled",
            ).fetch_all(pool).await?;
            let bots = sqlx::query_as::<_, KeyCount>(
                "SELECT run_state AS key, COUNT(*) AS count FROM bot_instances GROUP BY run_state ORDER BY run_state",
            ).fetch_all(pool).await?;
            let (channels, restarts): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM enforced_channels), (SELECT CAST(COALESCE(SUM(restart_count), 0) AS BIGINT) FROM bot_instances)",
            ).fetch_one(pool).await?;
            FleetCounts { groups_by_health: health, groups_enabled: enabled, bots_by_state: bots, channels, restarts }
        }))
    }
}

#[derive(Debug, Clone, Default)]
pub struct FleetCounts {
    pub groups_by_health: Vec<KeyCount>,
    pub groups_enabled: Vec<(bool, i64)>,
    pub bots_by_state: Vec<KeyCount>,
    pub channels: i64,
    pub restarts: i64,
}

/// The tables charts read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Verifications,
    ApiCalls,
}

/// What rows are counted by. Fixed SQL, never client text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Outcome,
    Cached,
    Method,
    CallOutcome,
    HourOfDay,
    LatencyBucket,
}

impl Column {
    /// The rollup table and key expression counting `table` rows by this column.
    fn source(self, table: Table) -> (&'static str, &'static str) {
        match (table, self) {
            (Table::ApiCalls, Self::Method) => ("api_call_hourly", "method"),
            (Table::ApiCalls, _) => ("api_call_hourly", "outcome"),
            (Table::Verifications, Self::Cached) => (
                "verification_hourly",
                "CASE WHEN cached THEN 'cache' ELSE 'telegram' END",
            ),
            (Table::Verifications, Self::HourOfDay) => {
                ("verification_hourly", "CAST((hour / 3600000) % 24 AS TEXT)")
            }
            (Table::Verifications, Self::LatencyBucket) => (
                "verification_latency_hourly",
                "CASE WHEN latency_ms < 10 THEN '0-10' WHEN latency_ms < 50 THEN '10-50' \
                 WHEN latency_ms < 100 THEN '50-100' WHEN latency_ms < 250 THEN '100-250' \
                 WHEN latency_ms < 500 THEN '250-500' WHEN latency_ms < 1000 THEN '500-1000' ELSE '1000+' END",
            ),
            (Table::Verifications, _) => ("verification_hourly", "outcome"),
        }
    }
}

/// Windows of a week or more read the daily latency and group rollups (whole UTC days, unless the
/// buckets asked for are finer); shorter ones the hourly (whole UTC hours). Returns the latency
/// table, its time column and the window's aligned start.
fn grain(from: i64, to: i64, bucket_ms: i64) -> (&'static str, &'static str, i64) {
    const DAY: i64 = 86_400_000;
    if to - from >= 7 * DAY && (bucket_ms == 0 || bucket_ms >= DAY) {
        (
            "verification_latency_daily",
            "day",
            from.div_euclid(DAY) * DAY,
        )
    } else {
        ("verification_latency_hourly", "hour", hour_of(from))
    }
}

/// The start of the UTC hour holding `at`: windows count whole hours.
fn hour_of(at: i64) -> i64 {
    at.div_euclid(3_600_000) * 3_600_000
}

/// The smallest latency with at least `q` of the rows at or below it (nearest rank).
fn percentile(histogram: &[(i64, i64)], count: i64, q: f64) -> i64 {
    let rank = ((q * count as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (latency, n) in histogram {
        seen += n;
        if seen >= rank {
            return *latency;
        }
    }
    histogram.last().map(|(latency, _)| *latency).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank_over_the_histogram() {
        // 1..=100 once each.
        let histogram: Vec<(i64, i64)> = (1..=100).map(|l| (l, 1)).collect();
        assert_eq!(percentile(&histogram, 100, 0.50), 50);
        assert_eq!(percentile(&histogram, 100, 0.95), 95);
        assert_eq!(percentile(&histogram, 100, 0.99), 99);
        assert_eq!(percentile(&[(7, 3)], 3, 0.99), 7);
    }
}
