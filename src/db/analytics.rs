//! Aggregates behind the dashboard's stats and charts. The same SQL runs on both backends: times
//! are epoch milliseconds, so buckets are integer division and hours of the day are a modulo
//! (UTC). Percentiles are exact: rows are grouped by (bucket, latency) and ranked in Rust, because
//! SQLite has no percentile function and an approximation would not be the "true" figure.

use std::collections::BTreeMap;

use super::{KeyCount, Store, StoreError, with_pool};

/// Outcomes that mean the member was let speak because they are subscribed.
pub const SUCCESS_OUTCOMES: [&str; 3] = ["passed", "verified", "restored"];

/// One labelled count in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct BucketCount {
    pub bucket: i64,
    pub key: String,
    pub count: i64,
}

/// Latency percentiles of one bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyPoint {
    pub bucket: i64,
    pub count: i64,
    pub p50: i64,
    pub p95: i64,
    pub p99: i64,
}

impl Store {
    /// Rows of `table` (`verification_log` or `api_call_log`) per bucket and `column`, in `[from, to)`.
    pub async fn bucketed_counts(
        &self,
        table: Table,
        column: Column,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<BucketCount>, StoreError> {
        let sql = format!(
            "SELECT (created_at / $1) * $1 AS bucket, {col} AS key, COUNT(*) AS count FROM {table} \
             WHERE created_at >= $2 AND created_at < $3 GROUP BY 1, 2 ORDER BY 1, 2",
            col = column.sql(),
            table = table.name()
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, BucketCount>(sqlx::AssertSqlSafe(sql))
            .bind(bucket_ms)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Rows of `table` per `column` in `[from, to)`.
    pub async fn counts_by(
        &self,
        table: Table,
        column: Column,
        from: i64,
        to: i64,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let sql = format!(
            "SELECT {col} AS key, COUNT(*) AS count FROM {table} WHERE created_at >= $1 AND created_at < $2 \
             GROUP BY 1 ORDER BY 2 DESC, 1",
            col = column.sql(),
            table = table.name()
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, KeyCount>(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Exact p50/p95/p99 of verification latency per bucket.
    pub async fn latency_trend(
        &self,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<Vec<LatencyPoint>, StoreError> {
        let sql = "SELECT (created_at / $1) * $1 AS bucket, latency_ms, COUNT(*) FROM verification_log \
                   WHERE created_at >= $2 AND created_at < $3 GROUP BY 1, 2 ORDER BY 1, 2";
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (i64, i64, i64)>(sql)
            .bind(bucket_ms)
            .bind(from)
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

    /// Count, average and exact percentiles of verification latency in `[from, to)`.
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

    /// Average verification latency in `[from, to)`, in milliseconds.
    pub async fn average_latency(&self, from: i64, to: i64) -> Result<Option<f64>, StoreError> {
        let sql = "SELECT CAST(AVG(latency_ms) AS DOUBLE PRECISION) FROM verification_log \
                   WHERE created_at >= $1 AND created_at < $2";
        let sqlite_sql = "SELECT AVG(latency_ms) FROM verification_log WHERE created_at >= $1 AND created_at < $2";
        Ok(match self.backend() {
            super::Backend::Sqlite => {
                with_pool!(self, pool => sqlx::query_as::<_, (Option<f64>,)>(sqlite_sql)
                .bind(from).bind(to).fetch_one(pool).await)?
                .0
            }
            super::Backend::Postgres => {
                with_pool!(self, pool => sqlx::query_as::<_, (Option<f64>,)>(sql)
                .bind(from).bind(to).fetch_one(pool).await)?
                .0
            }
        })
    }

    /// The groups with the most verifications in `[from, to)`, with their titles.
    pub async fn top_groups(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let sql = "SELECT v.group_id, COALESCE(g.title, ''), v.n FROM \
                   (SELECT group_id, COUNT(*) AS n FROM verification_log WHERE created_at >= $1 AND created_at < $2 \
                    GROUP BY group_id ORDER BY n DESC, group_id LIMIT $3) v \
                   LEFT JOIN protected_groups g ON g.id = v.group_id ORDER BY v.n DESC, v.group_id";
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, (i64, String, i64)>(sql)
            .bind(from)
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

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Verifications => "verification_log",
            Self::ApiCalls => "api_call_log",
        }
    }
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
    fn sql(self) -> &'static str {
        match self {
            Self::Outcome => "outcome",
            Self::Cached => "CASE WHEN cached THEN 'cache' ELSE 'telegram' END",
            Self::Method => "method",
            Self::CallOutcome => "outcome",
            Self::HourOfDay => "CAST((created_at / 3600000) % 24 AS TEXT)",
            Self::LatencyBucket => {
                "CASE WHEN latency_ms < 10 THEN '0-10' WHEN latency_ms < 50 THEN '10-50' \
                 WHEN latency_ms < 100 THEN '50-100' WHEN latency_ms < 250 THEN '100-250' \
                 WHEN latency_ms < 500 THEN '250-500' WHEN latency_ms < 1000 THEN '500-1000' ELSE '1000+' END"
            }
        }
    }
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
