//! Consent records in PostgreSQL. One shared connection (tokio-postgres pipelines the queries of
//! concurrent tasks on it), opened again when it is found closed. Every operation, connecting
//! included, has a deadline, so a server that is down or hangs costs a caller at most that long.
//! An insert is one statement in autocommit: `Ok` means PostgreSQL committed it.

use super::{ConsentRecord, StoreError, StoreErrorKind, from_row, to_json};
use crate::config::PostgresUrl;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

/// The deadline of every operation, and of connecting.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The table, created unless it exists (an operator may have created it beforehand, and the
/// proxy's user may then lack the right to create tables). `id` sorts bytewise (`C`), like
/// SQLite's, so that exports page the same way on both.
const SCHEMA: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(7228164017385160385);
CREATE TABLE IF NOT EXISTS consent_records (
    id TEXT COLLATE "C" PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accept', 'reject', 'settings', 'withdrawal')),
    choices JSONB NOT NULL,
    texts_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    region TEXT,
    signals TEXT[] NOT NULL,
    client TEXT NOT NULL,
    path TEXT NOT NULL,
    site TEXT
);
CREATE INDEX IF NOT EXISTS consent_records_ts ON consent_records (ts_ms, id);
CREATE INDEX IF NOT EXISTS consent_records_site ON consent_records (site, ts_ms, id);
COMMIT;
"#;

/// A table created before records carried their site gets the column (under the same lock).
const ADD_SITE: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(7228164017385160385);
ALTER TABLE consent_records ADD COLUMN IF NOT EXISTS site TEXT;
CREATE INDEX IF NOT EXISTS consent_records_site ON consent_records (site, ts_ms, id);
COMMIT;
"#;

const HAS_SITE: &str = "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
    WHERE table_schema = current_schema() AND table_name = 'consent_records' \
    AND column_name = 'site')";

const INSERT: &str = "INSERT INTO consent_records \
    (id, ts_ms, kind, choices, texts_version, policy_version, region, signals, client, path, site) \
    VALUES ($1, $2, $3, CAST($4::text AS jsonb), $5, $6, $7, $8, $9, $10, $11)";
const SELECT: &str = "SELECT id, ts_ms, kind, choices::text, texts_version, policy_version, \
    region, signals, client, path, site FROM consent_records";
const PURGE: &str = "DELETE FROM consent_records WHERE id IN \
    (SELECT id FROM consent_records WHERE ts_ms < $1 LIMIT $2)";

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    insert: Statement,
    get: Statement,
    export: Statement,
    /// One site's records (by the site index).
    export_site: Statement,
    purge: Statement,
}

pub(super) struct Postgres {
    config: Config,
    name: String,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

impl Postgres {
    pub(super) async fn open(url: &PostgresUrl) -> Result<Postgres, String> {
        let (text, origin) = match url {
            PostgresUrl::Inline(url) => (url.clone(), "consent_records.url".to_string()),
            PostgresUrl::File(path) => {
                let origin = format!("consent_records.url_file {}", path.display());
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("{origin}: cannot read it: {e}"))?;
                (text.trim().to_string(), origin)
            }
        };
        let config = parse(&text).map_err(|e| format!("{origin}: {e}"))?;
        let pg = Postgres {
            name: describe(&config),
            config,
            conn: tokio::sync::Mutex::new(None),
        };
        let cannot = |why: String| {
            format!(
                "consent records: cannot open the PostgreSQL store {} ({origin}): {why}",
                pg.name
            )
        };
        let client = match tokio::time::timeout(TIMEOUT, pg.connect()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(cannot(message(&e))),
            Err(_) => return Err(cannot(format!("no answer within {TIMEOUT:?}"))),
        };
        let setup = async {
            let exists: bool = client
                .query_one("SELECT to_regclass('consent_records') IS NOT NULL", &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| message(&e))?;
            if !exists {
                client.batch_execute(SCHEMA).await.map_err(|e| {
                    format!("cannot create the consent_records table: {}", message(&e))
                })?;
            }
            let has_site: bool = client
                .query_one(HAS_SITE, &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| message(&e))?;
            if !has_site {
                client.batch_execute(ADD_SITE).await.map_err(|e| {
                    format!(
                        "the consent_records table has no `site` column and it cannot be added \
                         ({}): run `ALTER TABLE consent_records ADD COLUMN site TEXT` as the \
                         table's owner",
                        message(&e)
                    )
                })?;
            }
            prepare(client).await.map_err(|e| message(&e))
        };
        match tokio::time::timeout(TIMEOUT, setup).await {
            Ok(Ok(conn)) => {
                *pg.conn.lock().await = Some(Arc::new(conn));
                Ok(pg)
            }
            Ok(Err(e)) => Err(cannot(e)),
            Err(_) => Err(cannot(format!(
                "no answer within {TIMEOUT:?} while creating or checking the table"
            ))),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The shared connection, opened if there is none or it was closed.
    async fn conn(&self) -> Result<Arc<Conn>, tokio_postgres::Error> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.client.is_closed()
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = Arc::new(prepare(self.connect().await?).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// A new connection, its messages driven by a task of its own.
    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(store = %name, error = %message(&e), "connection to PostgreSQL lost");
            }
        });
        // A server configured not to wait for its disk would make `Ok` a lie.
        let sync: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await?
            .try_get(0)?;
        if sync == "off" {
            client.batch_execute("SET synchronous_commit = on").await?;
        }
        Ok(client)
    }

    /// Runs `f` on the connection within the deadline. After a timeout the connection is
    /// dropped: it may be stuck (a server that hangs, a network that lost it).
    async fn run<T, F, Fut>(&self, op: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut used: Option<Arc<Conn>> = None;
        let outcome = tokio::time::timeout(TIMEOUT, async {
            let conn = self.conn().await.map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("{}: {op}: cannot connect: {}", self.name, message(&e)),
                )
            })?;
            used = Some(conn.clone());
            f(conn).await.map_err(|e| {
                let kind = if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    StoreErrorKind::Duplicate
                } else {
                    StoreErrorKind::Unavailable
                };
                StoreError::new(kind, format!("{}: {op}: {}", self.name, message(&e)))
            })
        })
        .await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                if let (Some(used), Ok(mut slot)) = (used, self.conn.try_lock())
                    && slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &used))
                {
                    *slot = None;
                }
                Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    format!(
                        "{}: {op}: no answer within {TIMEOUT:?}; the outcome is unknown",
                        self.name
                    ),
                ))
            }
        }
    }

    pub(super) async fn insert(&self, rec: &ConsentRecord) -> Result<(), StoreError> {
        let choices = to_json(&rec.choices);
        let op = format!("insert {}", rec.id);
        let result = self
            .run(&op, |c| async move {
                c.client
                    .execute(
                        &c.insert,
                        &[
                            &rec.id,
                            &rec.ts_ms,
                            &rec.kind.as_str(),
                            &choices,
                            &rec.texts_version,
                            &rec.policy_version,
                            &rec.region,
                            &rec.signals,
                            &rec.client,
                            &rec.path,
                            &rec.site,
                        ],
                    )
                    .await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_duplicate() => Err(StoreError::new(
                StoreErrorKind::Duplicate,
                format!(
                    "{}: {op}: a record with this ID is already stored",
                    self.name
                ),
            )),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let row = self
            .run("get", |c| async move {
                c.client.query_opt(&c.get, &[&id]).await
            })
            .await?;
        row.map(|row| self.record(&row)).transpose()
    }

    pub(super) async fn export(
        &self,
        site: Option<String>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows = self
            .run("export", move |c| async move {
                match &site {
                    None => c.client.query(&c.export, &[&from_ms, &to_ms, &limit]).await,
                    Some(site) => {
                        c.client
                            .query(&c.export_site, &[&from_ms, &to_ms, &limit, site])
                            .await
                    }
                }
            })
            .await?;
        rows.iter().map(|row| self.record(row)).collect()
    }

    pub(super) async fn purge_batch(
        &self,
        older_than_ms: i64,
        batch: u64,
    ) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.run("purge", |c| async move {
            c.client.execute(&c.purge, &[&older_than_ms, &batch]).await
        })
        .await
    }

    fn record(&self, row: &Row) -> Result<ConsentRecord, StoreError> {
        let read = || -> Result<_, tokio_postgres::Error> {
            Ok((
                row.try_get::<_, String>(0)?,
                row.try_get::<_, i64>(1)?,
                row.try_get::<_, String>(2)?,
                row.try_get::<_, String>(3)?,
                row.try_get::<_, String>(4)?,
                row.try_get::<_, String>(5)?,
                row.try_get::<_, Option<String>>(6)?,
                row.try_get::<_, Vec<String>>(7)?,
                row.try_get::<_, String>(8)?,
                row.try_get::<_, String>(9)?,
                row.try_get::<_, Option<String>>(10)?,
            ))
        };
        let (id, ts_ms, kind, choices, texts, policy, region, signals, client, path, site) = read()
            .map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Corrupt,
                    format!("{}: a stored row: {}", self.name, message(&e)),
                )
            })?;
        from_row(
            &self.name, id, ts_ms, &kind, &choices, texts, policy, region, signals, client, path,
            site,
        )
    }
}

/// The statements, prepared on `client` (in one round trip).
async fn prepare(client: Client) -> Result<Conn, tokio_postgres::Error> {
    let get = format!("{SELECT} WHERE id = $1");
    // Two statements, so that each is planned on its own index.
    let export = |site: &str| {
        format!("{SELECT} WHERE {site}ts_ms >= $1 AND ts_ms < $2 ORDER BY ts_ms, id LIMIT $3")
    };
    let (export, export_site) = (export(""), export("site = $4 AND "));
    let (insert, get, export, export_site, purge) = tokio::try_join!(
        client.prepare(INSERT),
        client.prepare(&get),
        client.prepare(&export),
        client.prepare(&export_site),
        client.prepare(PURGE),
    )?;
    Ok(Conn {
        client,
        insert,
        get,
        export,
        export_site,
        purge,
    })
}

/// Parses a URL or `key=value` string, with an error that cannot carry the password.
fn parse(text: &str) -> Result<Config, String> {
    if text.is_empty() {
        return Err("the PostgreSQL URL is empty".into());
    }
    let mut config: Config = text.parse().map_err(|e: tokio_postgres::Error| {
        // The parser's detail for a malformed string may quote part of it, so only the
        // details that name an option are passed on.
        let detail = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .filter(|s| {
                s.starts_with("unknown option") || s.starts_with("invalid value for option")
            });
        match detail {
            Some(d) => format!("not a valid PostgreSQL URL: {d}"),
            None => "not a valid PostgreSQL URL (postgres://user:password@host:port/database) \
                     or key=value connection string"
                .to_string(),
        }
    })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err("the PostgreSQL URL names no host".into());
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(
            "sslmode=require, but TLS to PostgreSQL is not supported yet: connect over a \
             private network or a Unix socket, with sslmode=disable or prefer"
                .into(),
        );
    }
    if config.get_connect_timeout().is_none_or(|t| *t > TIMEOUT) {
        config.connect_timeout(TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("consent-proxy");
    }
    Ok(config)
}

/// `postgres USER@HOST:PORT/DB`, for messages: never the password.
fn describe(config: &Config) -> String {
    let mut s = String::from("postgres ");
    if let Some(user) = config.get_user() {
        let _ = write!(s, "{user}@");
    }
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .map(|a| a.to_string())
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(dir) => dir.display().to_string(),
            })
            .collect()
    };
    for (i, host) in hosts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(host);
        let ports = config.get_ports();
        if let Some(port) = ports.get(i).or(ports.first()) {
            let _ = write!(s, ":{port}");
        }
    }
    if let Some(db) = config.get_dbname() {
        let _ = write!(s, "/{db}");
    }
    s
}

/// An error and its causes, on one line.
fn message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string().replace('\n', "; ");
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn names_the_server_without_its_password() {
        let c = parse("postgres://cp:s3cr%20et@db.internal:6432/consents?sslmode=disable").unwrap();
        assert_eq!(describe(&c), "postgres cp@db.internal:6432/consents");
        let c = parse("host=/run/postgresql user=cp password=s3cret dbname=consents").unwrap();
        assert_eq!(describe(&c), "postgres cp@/run/postgresql/consents");
        assert_eq!(c.get_connect_timeout(), Some(&TIMEOUT));
        assert_eq!(c.get_application_name(), Some("consent-proxy"));
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        for url in [
            "postgres://cp:s3cret@db/consents?frobnicate=1",
            "postgres://cp:s3cret@db/consents?connect_timeout=soon",
            "host=db password='s3cret",
            "postgres://cp:s3cret@db/consents?sslmode=require",
            "postgres://cp:s3cret@/consents",
            "",
        ] {
            let e = parse(url).unwrap_err();
            assert!(!e.contains("s3cret"), "{url}: {e}");
            assert!(!e.is_empty());
        }
        assert!(
            parse("postgres://a:s3cret@db/c?sslmode=require")
                .unwrap_err()
                .contains("TLS")
        );
        assert!(
            parse("postgres://a:s3cret@db/c?frobnicate=1")
                .unwrap_err()
                .contains("frobnicate")
        );
    }

    #[tokio::test]
    async fn open_names_an_unreadable_url_file() {
        let e = Postgres::open(&PostgresUrl::File("/nonexistent/pg-url".into()))
            .await
            .err()
            .unwrap();
        assert!(
            e.contains("consent_records.url_file /nonexistent/pg-url"),
            "{e}"
        );
    }

    /// A server that is down: refused at once, with the target named and no password.
    #[tokio::test]
    async fn a_server_that_is_down_fails_at_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let start = Instant::now();
        let e = Postgres::open(&PostgresUrl::Inline(format!(
            "postgres://cp:s3cret@127.0.0.1:{port}/consents"
        )))
        .await
        .err()
        .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(e.contains(&format!("cp@127.0.0.1:{port}/consents")), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    /// A server that accepts connections and never answers: open gives up after the deadline.
    #[tokio::test]
    async fn a_server_that_never_answers_fails_within_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let start = Instant::now();
        let e = Postgres::open(&PostgresUrl::Inline(format!(
            "postgres://cp:s3cret@127.0.0.1:{port}/consents"
        )))
        .await
        .err()
        .unwrap();
        let took = start.elapsed();
        assert!(
            took >= TIMEOUT - Duration::from_millis(100),
            "{took:?}: {e}"
        );
        assert!(took < TIMEOUT + Duration::from_secs(1), "{took:?}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
        hold.abort();
    }
}
