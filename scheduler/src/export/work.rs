//! The bookkeeping of one running export: which chunks are rendered or in
//! flight, which files are cut, assembled and completed. No I/O: the driver
//! feeds it the job's reports and does what it says, and a replica taking
//! the job over rebuilds it from the same plan and reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use auditx_proto::{
    AssembleOutcome, AssembleResume, ChunkId, FileIndex, PrefixOutcome, RenderOutcome, TaskFailure,
    TaskRef, WorkerReport,
};

use crate::export::assign::{FileAssigner, FileExtent, RenderedChunk};
use crate::export::job_plan::JobPlan;
use crate::export::jobs::{JobSpec, Progress};
use crate::export::layout;
use crate::metrics;

/// One export's progress through rendering and assembly.
pub struct JobWork {
    spec: JobSpec,
    pub plan: JobPlan,
    rendered: BTreeMap<u32, RenderOutcome>,
    /// Rows of every rendered chunk, summed as they come.
    rows_rendered: u64,
    /// Chunks with no report that this driver has not dispatched yet.
    undispatched: BTreeSet<u32>,
    /// Chunks this driver dispatched, with no report yet.
    in_flight: HashMap<u32, Instant>,
    /// `None` once every chunk went through it.
    assigner: Option<FileAssigner>,
    /// Chunks fed to the assigner (always a prefix).
    fed: usize,
    files: Vec<FileExtent>,
    /// Files being assembled (cut or still open) by index.
    assembling: BTreeMap<u32, Assembly>,
    assembled: BTreeMap<u32, AssembleOutcome>,
    completed: BTreeSet<u32>,
    /// Bytes of each staging object that completed files hold.
    in_completed_files: HashMap<String, u64>,
}

/// The assembly of one file so far: the prefix stages reported, and the
/// task this driver has in flight for it.
#[derive(Debug, Default)]
struct Assembly {
    /// Where the next stage starts: the parts made so far and the hash of
    /// their bytes (`None`: the file's start).
    resume: Option<AssembleResume>,
    /// Prefix stages reported: the next stage's number.
    stages: u32,
    /// A prefix stage failed (or a worker too old for stages dead-lettered
    /// it): no more stages, the last task makes the whole file.
    whole: bool,
    /// When this driver sent the file's current task.
    sent: Option<Instant>,
}

/// A task to send for a file: its last, or a stage of its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssembleStep {
    /// The file, or (for a prefix) its extent so far.
    pub file: FileExtent,
    /// More segments follow: only the parts that none can change.
    pub prefix: bool,
    pub stage: u32,
    pub resume: Option<AssembleResume>,
}

impl JobWork {
    pub fn new(spec: JobSpec, plan: JobPlan) -> Self {
        let assigner = FileAssigner::new(plan.max_rows_per_file, plan.offset_stride);
        Self {
            undispatched: (0..plan.chunks.len() as u32).collect(),
            spec,
            plan,
            rendered: BTreeMap::new(),
            rows_rendered: 0,
            in_flight: HashMap::new(),
            assigner: Some(assigner),
            fed: 0,
            files: Vec::new(),
            assembling: BTreeMap::new(),
            assembled: BTreeMap::new(),
            completed: BTreeSet::new(),
            in_completed_files: HashMap::new(),
        }
    }

    /// Applies newly recorded reports (a repeated one changes nothing). A
    /// failure is fatal only for a task that has no success report: a duplicate of a task that did succeed may well fail later
    /// (e.g. assembling into an upload that was completed meanwhile).
    /// Returns the message the job fails with, if it must.
    pub fn apply(&mut self, reports: Vec<WorkerReport>) -> Result<(), String> {
        let mut failures = Vec::new();
        for report in reports {
            match report {
                WorkerReport::Rendered(outcome) => self.apply_rendered(outcome)?,
                WorkerReport::Assembled(outcome) => {
                    self.assembling.remove(&outcome.file.0);
                    self.assembled.entry(outcome.file.0).or_insert(outcome);
                }
                WorkerReport::AssembledPrefix(outcome) => self.apply_prefix(outcome),
                WorkerReport::Failed(TaskFailure {
                    task: TaskRef::AssemblePrefix { file, stage },
                    error,
                    ..
                }) => self.prefix_failed(file, stage, &error),
                WorkerReport::Failed(failure) => failures.push(failure),
                // Query reports are recorded under queries, never here.
                WorkerReport::Queried(_) | WorkerReport::QueryFailed(_) => {}
            }
        }
        match failures.into_iter().find(|f| !self.succeeded(f.task)) {
            Some(failure) => Err(self.failure_message(&failure)),
            None => Ok(()),
        }
    }

    fn apply_rendered(&mut self, outcome: RenderOutcome) -> Result<(), String> {
        let chunk = outcome.chunk.0;
        if self.rendered.contains_key(&chunk) {
            return Ok(());
        }
        if chunk as usize >= self.plan.chunks.len() {
            return Err(format!(
                "a worker reported chunk {chunk}, which is not in the plan"
            ));
        }
        self.check_rendered(&outcome)?;
        let latency = self.in_flight.remove(&chunk).map(|sent| sent.elapsed());
        metrics::chunk_completed(latency);
        self.undispatched.remove(&chunk);
        self.rows_rendered += outcome.rows;
        self.rendered.insert(chunk, outcome);
        Ok(())
    }

    /// A prefix stage's parts and hash: the next stage starts after them.
    /// A stage reported twice (two drivers sent it) counts once, and
    /// nothing counts once the file is assembled.
    fn apply_prefix(&mut self, outcome: PrefixOutcome) {
        if self.assembled.contains_key(&outcome.file.0) {
            return;
        }
        let assembly = self.assembling.entry(outcome.file.0).or_default();
        if assembly.whole || outcome.stage != assembly.stages {
            return;
        }
        let mut parts = assembly.resume.take().map_or_else(Vec::new, |r| r.parts);
        parts.extend(outcome.parts);
        assembly.resume = Some(AssembleResume {
            parts,
            sha256: outcome.sha256,
        });
        assembly.stages += 1;
        assembly.sent = None;
    }

    /// A prefix stage that failed is not fatal: the file is assembled
    /// whole at the end, where a lasting problem fails it with its message.
    fn prefix_failed(&mut self, file: FileIndex, stage: u32, error: &str) {
        if self.assembled.contains_key(&file.0) {
            return;
        }
        let assembly = self.assembling.entry(file.0).or_default();
        if stage < assembly.stages || assembly.whole {
            return;
        }
        tracing::warn!(request_id = %self.spec.request_id, file = file.0, stage, error, "file prefix not assembled, the file will be assembled whole");
        assembly.whole = true;
        assembly.resume = None;
        assembly.sent = None;
    }

    /// A report the assigner can rely on: its own staging key, and one
    /// ascending offset per `offset_stride` rows within the staged bytes.
    fn check_rendered(&self, outcome: &RenderOutcome) -> Result<(), String> {
        let planned = &self.plan.chunks[outcome.chunk.0 as usize];
        let split = planned.event_id_from.is_some() || planned.event_id_to.is_some();
        if split && !outcome.event_ids_bounded {
            return Err(format!(
                "chunk {} was rendered by a worker too old to split a millisecond by eventId; \
                 upgrade every worker, then run the export again",
                outcome.chunk
            ));
        }
        let expected = self.staging_key(outcome.chunk);
        let stride = u64::from(self.plan.offset_stride);
        let offsets = &outcome.row_offsets;
        let consistent = outcome.staging_key == expected
            && offsets.len() as u64 == outcome.rows.div_ceil(stride)
            && offsets.first().is_none_or(|&first| first == 0)
            && offsets.windows(2).all(|w| w[0] < w[1])
            && offsets.last().is_none_or(|&last| last < outcome.bytes);
        if consistent {
            Ok(())
        } else {
            Err(format!(
                "chunk {} failed: the worker's report is inconsistent",
                outcome.chunk
            ))
        }
    }

    fn succeeded(&self, task: TaskRef) -> bool {
        match task {
            TaskRef::Render { chunk } => self.rendered.contains_key(&chunk.0),
            TaskRef::Assemble { file } => self.assembled.contains_key(&file.0),
            // Never fatal (see `prefix_failed`).
            TaskRef::AssemblePrefix { .. } => true,
        }
    }

    fn failure_message(&self, failure: &TaskFailure) -> String {
        match failure.task {
            TaskRef::Render { chunk } => format!("chunk {chunk} failed: {}", failure.error),
            TaskRef::Assemble { file } | TaskRef::AssemblePrefix { file, .. } => {
                format!("file {} failed: {}", self.file_key(file), failure.error)
            }
        }
    }

    /// Feeds newly rendered chunks, in order, to the file assigner; returns
    /// how many files are now known.
    pub fn cut_files(&mut self) -> usize {
        while let Some(assigner) = self.assigner.as_mut() {
            if self.fed == self.plan.chunks.len() {
                let last = self.assigner.take().and_then(FileAssigner::finish);
                self.files.extend(last);
                break;
            }
            let Some(outcome) = self.rendered.get_mut(&(self.fed as u32)) else {
                break;
            };
            let done = assigner.push(&RenderedChunk::from(&*outcome));
            // The offsets only matter to the assigner: keep the memory of a
            // long job to a few bytes per chunk.
            outcome.row_offsets = Vec::new();
            self.files.extend(done);
            self.fed += 1;
        }
        self.files.len()
    }

    /// The assembly tasks to send now: the last task of every cut file
    /// that nobody reported assembled, and a stage of the open file's
    /// prefix once enough of it is new ([`Self::stage_bytes`]); one task
    /// in flight per file, as a stage resumes from the previous one.
    pub fn files_to_assemble(&self) -> Vec<AssembleStep> {
        let mut steps = Vec::new();
        for file in &self.files {
            if self.assembled.contains_key(&file.index.0) {
                continue;
            }
            let assembly = self.assembling.get(&file.index.0);
            if assembly.is_some_and(|a| a.sent.is_some()) {
                continue;
            }
            steps.push(AssembleStep {
                file: file.clone(),
                prefix: false,
                stage: assembly.map_or(0, |a| a.stages),
                resume: assembly.and_then(|a| a.resume.clone()),
            });
        }
        if let Some(open) = self.assigner.as_ref().map(FileAssigner::open) {
            let assembly = self.assembling.get(&open.index.0);
            let busy = assembly.is_some_and(|a| a.sent.is_some() || a.whole);
            let resume = assembly.and_then(|a| a.resume.clone());
            let done = resume.as_ref().map_or(0, |r| r.sha256.bytes);
            if !busy && open.bytes >= done + self.stage_bytes(done) {
                steps.push(AssembleStep {
                    file: open.clone(),
                    prefix: true,
                    stage: assembly.map_or(0, |a| a.stages),
                    resume,
                });
            }
        }
        steps
    }

    /// New bytes that make a prefix stage worth a task: a part, or a
    /// sixteenth of what is done, whichever is more. Every task lists the
    /// parts made before it; stages growing with the file keep the parts
    /// listed over all its tasks to O(parts × log parts), and what is left
    /// for the end to a sixteenth of the file and its last chunks.
    fn stage_bytes(&self, done: u64) -> u64 {
        self.plan.part_size.max(done / 16)
    }

    pub fn assemble_sent(&mut self, file: FileIndex, at: Instant) {
        self.assembling.entry(file.0).or_default().sent = Some(at);
    }

    /// Tasks sent more than `timeout` before `now` with no report yet are
    /// sent again (a report lost with a crashed state store, a message
    /// lost by the broker): rendering and assembling are deterministic and
    /// reports write-once, so a duplicate is harmless. Returns how many.
    pub fn requeue_overdue(&mut self, timeout: Duration, now: Instant) -> usize {
        let overdue = |sent: &Instant| now.saturating_duration_since(*sent) >= timeout;
        let chunks: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, sent)| overdue(sent))
            .map(|(&chunk, _)| chunk)
            .collect();
        for chunk in &chunks {
            self.in_flight.remove(chunk);
            self.undispatched.insert(*chunk);
        }
        let mut files = 0;
        for assembly in self.assembling.values_mut() {
            if assembly.sent.as_ref().is_some_and(overdue) {
                assembly.sent = None;
                files += 1;
            }
        }
        chunks.len() + files
    }

    /// Assembled files whose upload is not completed yet, each checked
    /// against its extent.
    pub fn files_to_complete(&self) -> Result<Vec<AssembleOutcome>, String> {
        let mut ready = Vec::new();
        for file in &self.files {
            let Some(outcome) = self.assembled.get(&file.index.0) else {
                continue;
            };
            if self.completed.contains(&file.index.0) {
                continue;
            }
            let key = self.file_key(file.index);
            if outcome.key != key || outcome.rows != file.rows {
                return Err(format!(
                    "file {key} failed: the worker's report does not match the plan"
                ));
            }
            ready.push(outcome.clone());
        }
        Ok(ready)
    }

    /// Notes `file` completed; returns the staging objects no file still
    /// to be completed reads from: every byte of their chunk is in
    /// completed files (a chunk cut between two files waits for both).
    pub fn file_completed(&mut self, file: FileIndex) -> Vec<String> {
        if !self.completed.insert(file.0) {
            return Vec::new();
        }
        let Some(extent) = self.files.iter().find(|f| f.index == file) else {
            return Vec::new();
        };
        let mut touched = BTreeSet::new();
        for segment in &extent.segments {
            *self
                .in_completed_files
                .entry(segment.key.clone())
                .or_default() += segment.end - segment.start;
            touched.insert(segment.key.as_str());
        }
        self.rendered
            .values()
            .filter(|chunk| chunk.bytes > 0 && touched.contains(chunk.staging_key.as_str()))
            .filter(|chunk| self.in_completed_files.get(&chunk.staging_key) == Some(&chunk.bytes))
            .map(|chunk| chunk.staging_key.clone())
            .collect()
    }

    /// Chunks to dispatch now, lowest first, keeping at most `max_in_flight`
    /// of this driver's render tasks outstanding.
    pub fn chunks_to_dispatch(&self, max_in_flight: u32) -> Vec<ChunkId> {
        let room = (max_in_flight as usize).saturating_sub(self.in_flight.len());
        self.undispatched
            .iter()
            .take(room)
            .map(|&c| ChunkId(c))
            .collect()
    }

    pub fn chunk_sent(&mut self, chunk: ChunkId, at: Instant) {
        self.undispatched.remove(&chunk.0);
        self.in_flight.insert(chunk.0, at);
    }

    /// Every file is cut and its upload completed.
    pub fn is_complete(&self) -> bool {
        self.assigner.is_none() && self.completed.len() == self.files.len()
    }

    pub fn progress(&self) -> Progress {
        Progress {
            chunks_total: self.plan.chunks.len() as u64,
            chunks_done: self.rendered.len() as u64,
            files_total: self.files.len() as u64,
            files_done: self.completed.len() as u64,
            rows: self.rows_rendered,
        }
    }

    /// The completed files in order with what their assembly reported.
    pub fn completed_files(&self) -> Vec<(&FileExtent, &AssembleOutcome)> {
        self.files
            .iter()
            .filter_map(|f| self.assembled.get(&f.index.0).map(|o| (f, o)))
            .collect()
    }

    pub fn staging_key(&self, chunk: ChunkId) -> String {
        layout::staging_key(
            &self.spec.tenant,
            &self.spec.request_id,
            chunk,
            self.spec.query.format,
        )
    }

    pub fn file_key(&self, file: FileIndex) -> String {
        layout::file_key(
            &self.spec.tenant,
            &self.spec.request_id,
            self.spec.query.export_type,
            self.spec.query.format,
            file,
        )
    }
}

#[cfg(test)]
mod tests {
    use auditx_proto::{
        MeterId, OutputFormat, RecordType, RequestId, RowFilter, RunType, Sha256Midstate, TenantId,
        UploadedPart,
    };

    use super::*;
    use crate::export::jobs::ExportQuery;
    use crate::export::planner::PlannedChunk;

    fn spec() -> JobSpec {
        JobSpec {
            request_id: RequestId::from("r-1"),
            tenant: TenantId::from("acme"),
            meter_id: MeterId(7),
            query: ExportQuery {
                export_type: RecordType::Error,
                run_type: RunType::Normal,
                session_ids: vec![],
                run_statuses: vec![],
                operator_ids: vec![],
                query_from_time: "2025-01-01T00:00:00Z".into(),
                query_to_time: "2025-01-02T00:00:00Z".into(),
                format: OutputFormat::Csv,
            },
            from_ms: 0,
            to_ms: 300,
            created_at_ms: 0,
            traceparent: None,
            track_id: None,
            scope: Default::default(),
        }
    }

    fn work(chunks: usize) -> JobWork {
        let plan = JobPlan {
            consistent_as_of_ms: 0,
            filter: RowFilter {
                run_type: RunType::Normal,
                record_type: RecordType::Error,
                session_ids: None,
                operator_ids: None,
                scope: Default::default(),
            },
            run_statuses: BTreeMap::new(),
            chunks: (0..chunks as i64)
                .map(|i| PlannedChunk {
                    from_ms: i * 100,
                    to_ms: i * 100 + 100,
                    sources: vec![],
                    estimated_rows: 10,
                    event_id_from: (i == 1).then(|| "e-5".to_string()),
                    event_id_to: None,
                })
                .collect(),
            max_rows_per_file: 10,
            offset_stride: 5,
            part_size: 5 << 20,
        };
        JobWork::new(spec(), plan)
    }

    fn rendered(w: &JobWork, chunk: u32, rows: u64) -> WorkerReport {
        WorkerReport::Rendered(RenderOutcome {
            request_id: RequestId::from("r-1"),
            chunk: ChunkId(chunk),
            staging_key: w.staging_key(ChunkId(chunk)),
            rows,
            bytes: rows * 10,
            row_offsets: (0..rows.div_ceil(5)).map(|i| i * 50).collect(),
            event_ids_bounded: true,
        })
    }

    fn assembled(w: &JobWork, file: u32, rows: u64) -> WorkerReport {
        WorkerReport::Assembled(AssembleOutcome {
            request_id: RequestId::from("r-1"),
            file: FileIndex(file),
            key: w.file_key(FileIndex(file)),
            upload_id: "u".into(),
            parts: vec![],
            rows,
            bytes: 0,
            sha256: String::new(),
        })
    }

    fn failed(task: TaskRef) -> WorkerReport {
        WorkerReport::Failed(TaskFailure {
            request_id: RequestId::from("r-1"),
            task,
            error: "boom".into(),
        })
    }

    #[test]
    fn dispatch_is_bounded_and_in_order() {
        let mut w = work(5);
        assert_eq!(w.chunks_to_dispatch(2), vec![ChunkId(0), ChunkId(1)]);
        w.chunk_sent(ChunkId(0), Instant::now());
        w.chunk_sent(ChunkId(1), Instant::now());
        assert!(w.chunks_to_dispatch(2).is_empty());
        let report = rendered(&w, 0, 3);
        w.apply(vec![report]).unwrap();
        assert_eq!(w.chunks_to_dispatch(2), vec![ChunkId(2)]);
    }

    #[test]
    fn tasks_without_a_report_for_too_long_are_sent_again() {
        let mut w = work(3);
        let start = Instant::now();
        let timeout = Duration::from_secs(900);
        w.chunk_sent(ChunkId(0), start);
        w.chunk_sent(ChunkId(1), start + Duration::from_secs(600));
        assert!(w.chunks_to_dispatch(2).is_empty());
        assert_eq!(
            w.requeue_overdue(timeout, start + Duration::from_secs(899)),
            0
        );
        assert_eq!(w.requeue_overdue(timeout, start + timeout), 1);
        assert_eq!(
            w.chunks_to_dispatch(2),
            vec![ChunkId(0)],
            "chunk 0 goes again"
        );

        // Assembly too: a file sent for assembly long ago is offered again.
        let (r0, r1, r2) = (rendered(&w, 0, 3), rendered(&w, 1, 3), rendered(&w, 2, 3));
        w.apply(vec![r0, r1, r2]).unwrap();
        w.cut_files();
        let files = w.files_to_assemble();
        assert!(!files.is_empty());
        let sent = start + Duration::from_secs(1_000);
        files
            .iter()
            .for_each(|f| w.assemble_sent(f.file.index, sent));
        assert!(w.files_to_assemble().is_empty());
        assert_eq!(w.requeue_overdue(timeout, sent + timeout), files.len());
        assert_eq!(w.files_to_assemble().len(), files.len());
    }

    #[test]
    fn files_are_cut_as_chunks_complete_in_order() {
        let mut w = work(3);
        let (r1, r0, r2) = (rendered(&w, 1, 10), rendered(&w, 0, 7), rendered(&w, 2, 0));
        w.apply(vec![r1.clone()]).unwrap();
        assert_eq!(w.cut_files(), 0, "chunk 0 is missing");
        w.apply(vec![r1, r0]).unwrap();
        assert_eq!(w.cut_files(), 2);
        assert!(!w.is_complete());
        w.apply(vec![r2]).unwrap();
        assert_eq!(w.cut_files(), 2, "the empty last chunk adds no file");
        assert_eq!(w.files_to_assemble().len(), 2);
        let reports = vec![assembled(&w, 0, 7), assembled(&w, 1, 10)];
        w.apply(reports).unwrap();
        let ready = w.files_to_complete().unwrap();
        assert_eq!(ready.len(), 2);
        for outcome in &ready {
            w.file_completed(outcome.file);
        }
        assert!(w.is_complete());
        assert_eq!(w.progress().rows, 17);
    }

    #[test]
    fn a_staged_chunk_is_released_once_every_file_holding_it_is_completed() {
        let mut w = work(3);
        // Files of 10 rows: file 0 is chunk 0 and half of chunk 1, file 1
        // the other half and chunk 2.
        let reports = [(0, 5), (1, 10), (2, 5)].map(|(c, rows)| rendered(&w, c, rows));
        w.apply(reports.to_vec()).unwrap();
        assert_eq!(w.cut_files(), 2);
        let key = |c: u32| w.staging_key(ChunkId(c));
        let (k0, k1, k2) = (key(0), key(1), key(2));
        assert_eq!(w.file_completed(FileIndex(0)), vec![k0]);
        assert_eq!(w.file_completed(FileIndex(0)), Vec::<String>::new(), "once");
        assert_eq!(w.file_completed(FileIndex(1)), vec![k1, k2]);
    }

    #[test]
    fn a_failure_is_fatal_only_without_a_success() {
        let mut w = work(2);
        let ok = rendered(&w, 0, 1);
        w.apply(vec![failed(TaskRef::Render { chunk: ChunkId(0) }), ok])
            .unwrap();
        let err = w
            .apply(vec![failed(TaskRef::Render { chunk: ChunkId(1) })])
            .unwrap_err();
        assert_eq!(err, "chunk 1 failed: boom");
        let err = w
            .apply(vec![failed(TaskRef::Assemble { file: FileIndex(0) })])
            .unwrap_err();
        assert_eq!(err, "file acme/r-1/audit_trail_error_0001.csv failed: boom");
    }

    #[test]
    fn inconsistent_reports_fail_the_job() {
        let mut w = work(1);
        let WorkerReport::Rendered(mut outcome) = rendered(&w, 0, 12) else {
            unreachable!()
        };
        outcome.row_offsets.pop();
        let err = w.apply(vec![WorkerReport::Rendered(outcome)]).unwrap_err();
        assert!(err.starts_with("chunk 0 failed"), "{err}");
    }

    #[test]
    fn a_split_chunk_rendered_by_an_old_worker_fails_the_job() {
        let mut w = work(2);
        let WorkerReport::Rendered(mut unbounded) = rendered(&w, 0, 5) else {
            unreachable!()
        };
        unbounded.event_ids_bounded = false;
        // Chunk 0 has no eventId bounds: any worker may render it.
        w.apply(vec![WorkerReport::Rendered(unbounded)]).unwrap();
        let WorkerReport::Rendered(mut old) = rendered(&w, 1, 5) else {
            unreachable!()
        };
        old.event_ids_bounded = false;
        let err = w.apply(vec![WorkerReport::Rendered(old)]).unwrap_err();
        assert!(err.contains("too old to split a millisecond"), "{err}");
    }

    fn prefix(file: u32, stage: u32, numbers: std::ops::Range<i32>, bytes: u64) -> WorkerReport {
        WorkerReport::AssembledPrefix(PrefixOutcome {
            request_id: RequestId::from("r-1"),
            file: FileIndex(file),
            stage,
            parts: numbers
                .map(|number| UploadedPart {
                    number,
                    etag: format!("e{number}"),
                })
                .collect(),
            sha256: Sha256Midstate {
                state: [stage; 8],
                bytes,
                pending: vec![0; (bytes % 64) as usize],
            },
        })
    }

    fn numbers(resume: &Option<AssembleResume>) -> Vec<i32> {
        resume
            .iter()
            .flat_map(|r| r.parts.iter().map(|p| p.number))
            .collect()
    }

    /// `work(chunks)` cutting files of up to 100 rows into parts of 10
    /// bytes: files are assembled in prefix stages.
    fn staged_work(chunks: usize) -> JobWork {
        let mut w = work(chunks);
        w.plan.max_rows_per_file = 100;
        w.plan.part_size = 10;
        w.assigner = Some(FileAssigner::new(100, 5));
        w
    }

    #[test]
    fn a_file_is_assembled_in_stages_while_its_chunks_render() {
        let mut w = staged_work(3);
        let at = Instant::now();
        // 70 bytes of the open file: more than a part, a first stage.
        w.apply(vec![rendered(&w, 0, 7)]).unwrap();
        w.cut_files();
        let steps = w.files_to_assemble();
        assert_eq!(steps.len(), 1);
        assert!(steps[0].prefix && steps[0].stage == 0 && steps[0].resume.is_none());
        assert_eq!(steps[0].file.bytes, 70);
        w.assemble_sent(FileIndex(0), at);
        assert!(
            w.files_to_assemble().is_empty(),
            "one task per file at once"
        );
        w.apply(vec![prefix(0, 0, 1..8, 70)]).unwrap();
        assert!(w.files_to_assemble().is_empty(), "nothing new yet");

        // The next chunk: a second stage resumes after the first's parts; a
        // second report of the first stage (another driver's) counts once.
        w.apply(vec![rendered(&w, 1, 7), prefix(0, 0, 1..8, 70)])
            .unwrap();
        w.cut_files();
        let steps = w.files_to_assemble();
        assert_eq!((steps[0].prefix, steps[0].stage), (true, 1));
        assert_eq!(numbers(&steps[0].resume), (1..8).collect::<Vec<_>>());
        assert_eq!(steps[0].resume.as_ref().unwrap().sha256.bytes, 70);
        w.assemble_sent(FileIndex(0), at);
        w.apply(vec![prefix(0, 1, 8..15, 140)]).unwrap();

        // The last chunk cuts the file: its last task resumes after every
        // stage's parts.
        w.apply(vec![rendered(&w, 2, 3)]).unwrap();
        w.cut_files();
        let steps = w.files_to_assemble();
        assert_eq!(steps.len(), 1);
        assert_eq!((steps[0].prefix, steps[0].stage), (false, 2));
        assert_eq!(steps[0].file.rows, 17);
        assert_eq!(numbers(&steps[0].resume), (1..15).collect::<Vec<_>>());
        w.assemble_sent(FileIndex(0), at);
        w.apply(vec![assembled(&w, 0, 17)]).unwrap();
        assert!(w.files_to_assemble().is_empty());
        assert_eq!(w.files_to_complete().unwrap().len(), 1);
    }

    #[test]
    fn a_failed_prefix_stage_makes_the_file_assembled_whole() {
        let mut w = staged_work(2);
        w.apply(vec![rendered(&w, 0, 7)]).unwrap();
        w.cut_files();
        w.assemble_sent(FileIndex(0), Instant::now());
        w.apply(vec![prefix(0, 0, 1..8, 70)]).unwrap();
        w.apply(vec![rendered(&w, 1, 7)]).unwrap();
        w.cut_files();
        let steps = w.files_to_assemble();
        assert_eq!(
            steps.len(),
            1,
            "the last chunk is rendered: the file is cut"
        );
        w.assemble_sent(FileIndex(0), Instant::now());
        // Stage 0 failing late (a duplicate) changes nothing; the stage in
        // flight failing is not fatal but drops the stages.
        w.apply(vec![failed(TaskRef::AssemblePrefix {
            file: FileIndex(0),
            stage: 0,
        })])
        .unwrap();
        assert!(w.files_to_assemble().is_empty());
        let mut w = staged_work(2);
        w.apply(vec![rendered(&w, 0, 7)]).unwrap();
        w.cut_files();
        w.assemble_sent(FileIndex(0), Instant::now());
        w.apply(vec![failed(TaskRef::AssemblePrefix {
            file: FileIndex(0),
            stage: 0,
        })])
        .unwrap();
        w.apply(vec![rendered(&w, 1, 7)]).unwrap();
        w.cut_files();
        let steps = w.files_to_assemble();
        assert_eq!(steps.len(), 1);
        assert!(!steps[0].prefix && steps[0].resume.is_none());
        assert_eq!(steps[0].file.rows, 14);
    }
}
