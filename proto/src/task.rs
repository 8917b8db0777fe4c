//! Tasks the scheduler sends to workers and the reports workers send back.
//!
//! An export runs in two stages. A [`RenderTask`] renders one chunk (a time
//! slice of the lake) into a staging object; chunks are small and rendered
//! in parallel by any worker. Once every chunk of an output file is rendered
//! the scheduler knows the file's exact byte layout and sends an
//! [`AssembleTask`]: a worker streams the header plus the staged byte ranges
//! into S3 multipart parts of exactly `part_size` bytes (so tiny chunk
//! outputs never become undersized parts), hashing the file as it goes.
//!
//! A long file is not left to the end: while its later chunks render, the
//! scheduler sends [`Task::AssemblePrefix`] tasks for the prefix known so
//! far. Each makes the parts that no later chunk can change and reports
//! them with the SHA-256 of the bytes in them, paused ([`Sha256Midstate`]);
//! the next stage, and the file's last [`AssembleTask`], resume from there
//! ([`AssembleResume`]), so only the file's end is left once the last chunk
//! is rendered. A part's bytes depend only on the file's layout, so a
//! redelivered or duplicated stage writes the very bytes again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    ChunkId, FileIndex, MeterId, QueryId, QueryOutcome, QueryTask, RequestId, Scope, TenantId,
};

/// `runType` of a meter run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunType {
    Normal,
    Debug,
}

impl RunType {
    pub const ALL: [RunType; 2] = [RunType::Normal, RunType::Debug];

    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Normal => "NORMAL",
            RunType::Debug => "DEBUG",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `recordType` of an audit row, selected by an export's `exportType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordType {
    /// A successfully processed output record.
    Sample,
    /// A failed record.
    Error,
}

impl RecordType {
    pub const ALL: [RecordType; 2] = [RecordType::Sample, RecordType::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Sample => "SAMPLE",
            RecordType::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The file format an export renders.
///
/// Every format holds the same rows in the same order and the same twelve
/// columns (SPEC §6). A worker from before a format cannot decode a task
/// naming it and dead-letters the task, which fails the job with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// RFC 4180 CSV with a header row in every file.
    #[default]
    Csv,
    /// JSON Lines: one object per row, keys named and ordered like the CSV
    /// columns, `payload` the JSON object itself, absent values `null`.
    Jsonl,
    /// Apache Parquet: the twelve columns, `eventTime` a UTC timestamp in
    /// milliseconds, `payload` JSON text, absent values null.
    Parquet,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 3] = [
        OutputFormat::Csv,
        OutputFormat::Jsonl,
        OutputFormat::Parquet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Parquet => "parquet",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// File name extension of the rendered files.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Csv => "text/csv; charset=utf-8",
            OutputFormat::Jsonl => "application/x-ndjson",
            OutputFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Which rows of the lake an export selects, besides the time range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFilter {
    pub run_type: RunType,
    pub record_type: RecordType,
    /// Only these sessions (run ids); `None` means all. The scheduler folds
    /// `runStatuses` into this list when it plans the export.
    #[serde(default)]
    pub session_ids: Option<Vec<String>>,
    /// Only these operators; `None` means all.
    #[serde(default)]
    pub operator_ids: Option<Vec<String>>,
    /// Only rows of these entities and orgs: the scope the export was
    /// created with (unrestricted in messages from before scopes).
    #[serde(default)]
    pub scope: Scope,
}

/// Some row groups of one Parquet file of the lake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeSource {
    /// Object key in the lake bucket.
    pub key: String,
    /// Object size in bytes, so the reader can fetch the footer in one request.
    pub size: u64,
    pub row_groups: Vec<u32>,
}

/// Render one chunk of an export into a staging object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderTask {
    pub request_id: RequestId,
    pub tenant: TenantId,
    pub meter_id: MeterId,
    pub chunk: ChunkId,
    /// The chunk's time slice, epoch milliseconds, `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Every row group that may hold rows of the slice.
    pub sources: Vec<LakeSource>,
    pub filter: RowFilter,
    /// The status of each run (sessionId → status) when the export was
    /// planned; rendered as the `runStatus` column.
    #[serde(default)]
    pub run_statuses: BTreeMap<String, String>,
    #[serde(default)]
    pub format: OutputFormat,
    /// Where to write the rendered rows (export bucket, no header).
    pub staging_key: String,
    /// Report the byte offset of every `offset_stride`-th row, so the
    /// scheduler can cut files at row boundaries inside a chunk. (Parquet
    /// chunks are written as one row group per `offset_stride` rows, so the
    /// offsets are row-group starts and every cut falls between row groups.)
    pub offset_stride: u32,
    /// A millisecond holding more rows than a chunk should is split by
    /// eventId: only rows whose eventId is ≥ this (`None`: no lower bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_from: Option<String>,
    /// Only rows whose eventId is < this (`None`: no upper bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_to: Option<String>,
}

/// A byte range `[start, end)` of a staged chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub key: String,
    pub start: u64,
    pub end: u64,
}

/// Assemble one output file from staged chunk bytes as S3 multipart parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleTask {
    pub request_id: RequestId,
    pub tenant: TenantId,
    pub file: FileIndex,
    /// Final object key in the export bucket.
    pub key: String,
    /// Multipart upload created by the scheduler; it also completes it.
    pub upload_id: String,
    #[serde(default)]
    pub format: OutputFormat,
    /// Segments in file order; the worker writes the format's header first
    /// and its trailer (the Parquet footer) last.
    pub segments: Vec<Segment>,
    /// Data rows in the file (header excluded).
    pub rows: u64,
    /// Size of every part but the last (≥ 5 MiB on S3).
    pub part_size: u64,
    /// The parts earlier stages made and the hash of their bytes: this
    /// task makes the rest. `None`: the whole file (also what a worker
    /// older than stages does with any task, correctly, if more slowly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<AssembleResume>,
    /// The stage's number, counted from 0 over a file's prefix tasks; the
    /// last task's is one past its prefix stages.
    #[serde(default)]
    pub stage: u32,
}

/// Where a stage of a file's assembly starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleResume {
    /// Every part made so far, numbered `1..=parts.len()`.
    pub parts: Vec<UploadedPart>,
    /// The SHA-256 of the file's bytes in those parts.
    pub sha256: Sha256Midstate,
}

/// A SHA-256 computation paused after `bytes` bytes: the eight state words
/// after the last whole 64-byte block, and the bytes of the block begun.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256Midstate {
    pub state: [u32; 8],
    pub bytes: u64,
    /// `bytes % 64` bytes.
    pub pending: Vec<u8>,
}

/// A task as it travels on the tasks queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    Render(RenderTask),
    /// Assemble a file, or the rest of it after its prefix stages.
    Assemble(AssembleTask),
    /// Make the final parts of a file's known prefix (its `segments` so
    /// far, `rows` the rows in them; no trailer, no short last part). A
    /// worker older than stages cannot decode it and dead-letters it; the
    /// scheduler then assembles that file whole at the end.
    AssemblePrefix(AssembleTask),
    /// Run a data query (a worker older than data queries cannot decode
    /// it and dead-letters it, which fails the query with a message).
    Query(QueryTask),
}

impl Task {
    /// The job the task belongs to, for logs.
    pub fn job_id(&self) -> &str {
        match self {
            Task::Render(t) => t.request_id.as_str(),
            Task::Assemble(t) | Task::AssemblePrefix(t) => t.request_id.as_str(),
            Task::Query(t) => t.query_id.as_str(),
        }
    }

    /// The report that fails this task for good with `error`.
    pub fn failure(&self, error: String) -> WorkerReport {
        let (request_id, task) = match self {
            Task::Render(t) => (&t.request_id, TaskRef::Render { chunk: t.chunk }),
            Task::Assemble(t) => (&t.request_id, TaskRef::Assemble { file: t.file }),
            Task::AssemblePrefix(t) => (
                &t.request_id,
                TaskRef::AssemblePrefix {
                    file: t.file,
                    stage: t.stage,
                },
            ),
            Task::Query(t) => {
                return WorkerReport::QueryFailed(QueryFailure {
                    query_id: t.query_id.clone(),
                    error,
                })
            }
        };
        WorkerReport::Failed(TaskFailure {
            request_id: request_id.clone(),
            task,
            error,
        })
    }
}

/// What a worker rendered for one chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOutcome {
    pub request_id: RequestId,
    pub chunk: ChunkId,
    pub staging_key: String,
    pub rows: u64,
    /// Bytes of rendered rows at the start of the staging object. A Parquet
    /// chunk's staging object holds a trailer past them (its footer).
    pub bytes: u64,
    /// `row_offsets[i]` is the byte offset of row `i * offset_stride`
    /// (so `row_offsets[0] == 0` when there is at least one row).
    pub row_offsets: Vec<u64>,
    /// The worker applied the task's eventId bounds. A worker older than
    /// those bounds leaves it false, and the scheduler refuses its report
    /// for a chunk that has them (it would hold rows of other chunks).
    #[serde(default)]
    pub event_ids_bounded: bool,
}

/// One uploaded part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
}

/// What a worker uploaded for one output file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleOutcome {
    pub request_id: RequestId,
    pub file: FileIndex,
    pub key: String,
    pub upload_id: String,
    pub parts: Vec<UploadedPart>,
    pub rows: u64,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
}

/// What a worker made of a file's prefix ([`Task::AssemblePrefix`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixOutcome {
    pub request_id: RequestId,
    pub file: FileIndex,
    pub stage: u32,
    /// The parts this stage made (none if the prefix held no new whole
    /// part), in number order.
    pub parts: Vec<UploadedPart>,
    /// The SHA-256 of the file's bytes up to the end of those parts.
    pub sha256: Sha256Midstate,
}

/// Which task of a job a report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskRef {
    Render { chunk: ChunkId },
    Assemble { file: FileIndex },
    AssemblePrefix { file: FileIndex, stage: u32 },
}

/// A task that failed for good (after the worker's own retries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub request_id: RequestId,
    pub task: TaskRef,
    /// A message a user can act on; it becomes the job's failure reason.
    pub error: String,
}

/// A data query that failed for good (refused, over a limit, canceled, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFailure {
    pub query_id: QueryId,
    /// A message a user can act on; it becomes the job's `errorMessage`.
    pub error: String,
}

/// A worker's report on the results queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerReport {
    Rendered(RenderOutcome),
    Assembled(AssembleOutcome),
    /// A stage of a file's prefix (a scheduler older than stages cannot
    /// decode it and drops it; it never sends such stages either).
    AssembledPrefix(PrefixOutcome),
    Failed(TaskFailure),
    Queried(QueryOutcome),
    QueryFailed(QueryFailure),
}

impl WorkerReport {
    /// The job the report belongs to, for logs.
    pub fn job_id(&self) -> &str {
        match self {
            WorkerReport::Rendered(r) => r.request_id.as_str(),
            WorkerReport::Assembled(r) => r.request_id.as_str(),
            WorkerReport::AssembledPrefix(r) => r.request_id.as_str(),
            WorkerReport::Failed(r) => r.request_id.as_str(),
            WorkerReport::Queried(r) => r.query_id.as_str(),
            WorkerReport::QueryFailed(r) => r.query_id.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    fn render_task() -> RenderTask {
        RenderTask {
            request_id: RequestId::from("r-1"),
            tenant: TenantId::from("t1"),
            meter_id: MeterId(42),
            chunk: ChunkId(3),
            from_ms: 1_000,
            to_ms: 2_000,
            sources: vec![LakeSource {
                key: "k.parquet".into(),
                size: 10,
                row_groups: vec![0, 2],
            }],
            filter: RowFilter {
                run_type: RunType::Normal,
                record_type: RecordType::Error,
                session_ids: Some(vec!["R-1".into()]),
                operator_ids: None,
                scope: Scope::new(vec!["e1".into()], vec![]),
            },
            run_statuses: BTreeMap::from([("R-1".to_string(), "COMPLETED".to_string())]),
            format: OutputFormat::Csv,
            staging_key: "_staging/x".into(),
            offset_stride: 1000,
            event_id_from: Some("e-100".into()),
            event_id_to: None,
        }
    }

    #[test]
    fn tasks_and_reports_round_trip() {
        let task = Task::Render(render_task());
        assert_eq!(decode::<Task>(&encode(&task).unwrap()).unwrap(), task);
        let report = WorkerReport::Failed(TaskFailure {
            request_id: RequestId::from("r-1"),
            task: TaskRef::Assemble { file: FileIndex(2) },
            error: "boom".into(),
        });
        assert_eq!(
            decode::<WorkerReport>(&encode(&report).unwrap()).unwrap(),
            report
        );
    }

    #[test]
    fn encoding_keeps_field_names() {
        let bytes = encode(&Task::Render(render_task())).unwrap();
        let as_json: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(as_json["kind"], "render");
        assert_eq!(as_json["staging_key"], "_staging/x");
        assert_eq!(as_json["filter"]["record_type"], "ERROR");
    }

    #[test]
    fn formats_travel_by_name_with_their_extension() {
        for format in OutputFormat::ALL {
            let task = Task::Render(RenderTask {
                format,
                ..render_task()
            });
            let bytes = encode(&task).unwrap();
            let as_json: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(as_json["format"], format.as_str());
            assert_eq!(decode::<Task>(&bytes).unwrap(), task);
            assert_eq!(OutputFormat::parse(format.as_str()), Some(format));
            assert_eq!(format.extension(), format.as_str());
        }
        assert_eq!(
            OutputFormat::ALL.map(OutputFormat::as_str),
            ["csv", "jsonl", "parquet"]
        );
        assert_eq!(OutputFormat::parse("JSONL"), None);
    }

    /// An older worker must read a task from a newer scheduler (unknown
    /// fields ignored) and a newer one a task from an older scheduler
    /// (missing defaulted fields).
    #[test]
    fn unknown_fields_are_ignored_and_new_fields_default() {
        let mut value: serde_json::Value =
            rmp_serde::from_slice(&encode(&Task::Render(render_task())).unwrap()).unwrap();
        value["added_in_a_later_version"] = serde_json::json!({"x": 1});
        value.as_object_mut().unwrap().remove("run_statuses");
        value.as_object_mut().unwrap().remove("event_id_from");
        value.as_object_mut().unwrap().remove("format");
        value["filter"].as_object_mut().unwrap().remove("scope");
        let bytes = rmp_serde::to_vec_named(&value).unwrap();
        let Task::Render(task) = decode::<Task>(&bytes).unwrap() else {
            panic!("not a render task")
        };
        assert!(task.run_statuses.is_empty());
        assert_eq!(task.format, OutputFormat::Csv);
        assert_eq!(task.chunk, ChunkId(3));
        assert_eq!(task.filter.scope, Scope::default());
        assert_eq!((task.event_id_from, task.event_id_to), (None, None));
    }

    #[test]
    fn an_assemble_task_from_before_stages_is_a_whole_file_and_stages_round_trip() {
        let task = AssembleTask {
            request_id: RequestId::from("r-1"),
            tenant: TenantId::from("t1"),
            file: FileIndex(1),
            key: "t1/r-1/f.csv".into(),
            upload_id: "u".into(),
            format: OutputFormat::Csv,
            segments: vec![Segment {
                key: "_staging/c0".into(),
                start: 0,
                end: 10,
            }],
            rows: 3,
            part_size: 8,
            resume: Some(AssembleResume {
                parts: vec![UploadedPart {
                    number: 1,
                    etag: "e1".into(),
                }],
                sha256: Sha256Midstate {
                    state: [1, 2, 3, 4, 5, 6, 7, 8],
                    bytes: 70,
                    pending: vec![9; 6],
                },
            }),
            stage: 2,
        };
        for task in [
            Task::Assemble(task.clone()),
            Task::AssemblePrefix(task.clone()),
        ] {
            assert_eq!(decode::<Task>(&encode(&task).unwrap()).unwrap(), task);
        }
        let mut value: serde_json::Value =
            rmp_serde::from_slice(&encode(&Task::Assemble(task.clone())).unwrap()).unwrap();
        assert_eq!(value["kind"], "assemble");
        value.as_object_mut().unwrap().remove("resume");
        value.as_object_mut().unwrap().remove("stage");
        let old = rmp_serde::to_vec_named(&value).unwrap();
        let Task::Assemble(decoded) = decode::<Task>(&old).unwrap() else {
            panic!("not an assemble task")
        };
        assert_eq!((decoded.resume, decoded.stage), (None, 0));
        let report = WorkerReport::AssembledPrefix(PrefixOutcome {
            request_id: RequestId::from("r-1"),
            file: FileIndex(1),
            stage: 2,
            parts: vec![],
            sha256: task.resume.clone().unwrap().sha256,
        });
        assert_eq!(
            decode::<WorkerReport>(&encode(&report).unwrap()).unwrap(),
            report
        );
        let failure = Task::AssemblePrefix(AssembleTask { stage: 4, ..task }).failure("x".into());
        let WorkerReport::Failed(failure) = failure else {
            panic!("not a failure")
        };
        assert_eq!(
            failure.task,
            TaskRef::AssemblePrefix {
                file: FileIndex(1),
                stage: 4
            }
        );
    }
}
