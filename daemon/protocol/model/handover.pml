/*
 * The handover protocol of nichandover as implemented (daemon/protocol,
 * daemon/engine), for spin. docs/protocol.md, "Model checking", maps every
 * step below to the code that implements it; keep the two in step.
 *
 * Two nodes, S (0) and T (1), one NIC. Shared state that outlives a daemon
 * crash: the ownership record (changed only by CAS, the one atomic shared
 * step), each node's kernel hook (state, highest accepted fence), the NIC's
 * interrupt routing (which node's vectors, masked or not), T's reservation,
 * each node's journal. Everything else of a daemon is lost at a crash.
 *
 * A platform call is issued into a slot of its node and applied later by the
 * Platform process, atomically; its result reaches the daemon only if the
 * daemon is still the same incarnation and still waits for it. A call of a
 * crashed daemon, or one given up on after a hang, moves to the node's late
 * slot and may still land at any later moment (a late platform call).
 *
 * Budgets (-D...) bound crashes, failures, hangs and message faults so the
 * state space stays finite; docs/protocol.md lists the defaults.
 *
 * Seeded bugs (each must be found by spin; the test runs them):
 *   BUG_CAS_NO_EPOCH       the CAS compares state and nodes, not the epoch
 *   BUG_OPEN_BEFORE_CAS    the target attaches before its commit CAS
 *   BUG_SKIP_JOURNAL       the source does not journal SOURCE_STARTED
 *   BUG_NO_OP_FENCE        the kernel fences by epoch only (no op_id), R3 off
 *   BUG_FAILED_NOT_BLOCKING a FAILED handover does not block a new one, R1 off
 *   KERNEL_COMMIT_NO_RECORD_CHECK  the armed kernel commits on a doorbell of
 *                          its epoch without checking that the record is
 *                          exactly the HANDOFF it was armed for
 *   DOORBELL_BEFORE_CAS    the source kernel's HandOff rings the doorbell
 *                          before its CAS PREPARING -> HANDOFF
 *   HANDOFF_CAS_BEFORE_QUIESCE  the HandOff CASes (and rings) before it
 *                          closes the gates and reroutes
 *   BUG_DOORBELL_ONLY      an armed target daemon waits for its kernel only
 *                          (a progress bug: needs -DPROGRESS, pan -a -f)
 *
 * The kernel commit path (issue 14): the handover chooses it at create
 * (PATHS: 1 daemon path only, 2 kernel path only, 3 either). The target
 * daemon arms its kernel after the reservation; the source makes one HandOff
 * call (quiesce, reroute, rings, CAS PREPARING -> HANDOFF, doorbell: two
 * atomic steps of the Platform, the CAS and the doorbell, so a crash lands
 * between them); each node's kernel is its own process (Kernel), which
 * survives its daemon's crash, takes the doorbell, CASes HANDOFF ->
 * ACTIVE(T, e1) and attaches (two steps: a kernel crash between them loses
 * the attach), and tells its daemon by a kernel event. A kernel crash loses
 * the arm, a pending doorbell and the kernel's events (KCRASHES). Doorbells
 * may be lost (DBLOSSES) or stale: rung by hand with any epoch near the
 * record's (STALEDBS).
 */

#ifndef CRASHES
#define CRASHES 1
#endif
#ifndef OPFAILS
#define OPFAILS 2
#endif
#ifndef HANGS
#define HANGS 1
#endif
#ifndef LOSSES
#define LOSSES 1
#endif
#ifndef DUPS
#define DUPS 1
#endif
#ifndef HANDOVERS
#define HANDOVERS 2
#endif
#ifndef CANCELS
#define CANCELS 1
#endif
#ifndef RECOVERS
#define RECOVERS 1
#endif
#ifndef MAINTS
#define MAINTS 1
#endif
#ifndef GIVEUPS
#define GIVEUPS 1
#endif
#ifndef PATHS
#define PATHS 3
#endif
#ifndef KCRASHES
#define KCRASHES 0
#endif
#ifndef DBLOSSES
#define DBLOSSES 0
#endif
#ifndef STALEDBS
#define STALEDBS 0
#endif

#define S 0
#define T 1
#define NONE 0

/* Scenario restrictions, for the seeded bugs that need a long run of the
 * full nondeterminism (spin_test): FAULT_NODE=n lets only node n's daemon
 * crash and only its platform calls fail or hang; CREATE_NODE=n lets the
 * operator create handovers on node n only; RECOVER_AFTER_CRASH lets the
 * operator's RecoverNic come only once the crash budget is spent (an
 * operator recovering after a failure). Each removes choices, none adds a
 * behaviour, so a violation found under them is one of the full model. */
#ifdef FAULT_NODE
#define FAULTY(n) ((n) == FAULT_NODE)
#else
#define FAULTY(n) 1
#endif
#ifdef CREATE_NODE
#define CREATES(n) ((n) == CREATE_NODE)
#else
#define CREATES(n) 1
#endif
#ifdef RECOVER_AFTER_CRASH
#define MAY_RECOVER (crashes == 0)
#else
#define MAY_RECOVER 1
#endif

/* BUG_DOORBELL_ONLY: an armed target waits for its kernel alone; neither
 * the source's Commit nor its commit-wait timer makes it look at the record
 * (found only by the progress check: with a lost doorbell the source resends
 * Commit for ever). */
#ifdef BUG_DOORBELL_ONLY
#define DAEMON_MAY_COMMIT(n) (!karmed[n])
#else
#define DAEMON_MAY_COMMIT(n) 1
#endif

/* Record states; a record is packed into one byte: state | src<<2 | tgt<<3 | epoch<<4. */
#define ACTIVE 1
#define PREPARING 2
#define HANDOFF 3
#define REC(st, o, t, e) ((st) | ((o) << 2) | ((t) << 3) | ((e) << 4))
#define RST(r) ((r) & 3)
#define ROWN(r) (((r) >> 2) & 1)
#define REP(r) ((r) >> 4)
#define CUR REC(rs, ro, rt, re)

/* Kernel events (platform::KernelEvent::Kind). */
#define KEV_COMMITTED 1
#define KEV_NOTCOMMITTED 2

/* Hook states. */
#define DETACHED 0
#define RUNNING 1
#define QUIESCED 2

/* Platform calls (daemon/protocol/events.h OpKind). */
#define OP_READ 1
#define OP_CAS 2
#define OP_READMSG 3
#define OP_QUIESCE 4
#define OP_RESUME 5
#define OP_ATTACH 6
#define OP_RELEASE 7
#define OP_REROUTE 8
#define OP_RESTORE 9
#define OP_RESERVE 10
#define OP_RELRES 11
#define OP_ARM 12       /* FastPath::Arm(e1, HANDOFF(S, self, e1)) */
#define OP_HANDOFF 13   /* FastPath::HandOff, up to its CAS */
#define OP_DOORBELL 14  /* FastPath::HandOff after its CAS won: the doorbell */

/* What a node's daemon waits for (handover_machine.cc Wait, plus the
 * repairs, maintenance and operator recovery that run beside handovers). */
#define W_READ 1        /* source: Wait::kReadRecord */
#define W_READMSG 2     /* source: Wait::kReadMessages */
#define W_OFFER 3       /* source: Wait::kOffer */
#define W_PCAS 4        /* source: Wait::kPrepareCas */
#define W_QUIESCE 5     /* source: Wait::kQuiesce */
#define W_REROUTE 6     /* source: Wait::kReroute */
#define W_HCAS 7        /* source: Wait::kHandoffCas */
#define W_COMMIT 8      /* source: Wait::kCommit */
#define W_OREAD 9       /* source: Wait::kOutcomeRead (after kOutcomePoll) */
#define W_RELEASE 10    /* source: Wait::kRelease */
#define W_AREAD 11      /* source: Wait::kAbortRead */
#define W_ACAS 12       /* source: Wait::kAbortCas */
#define W_RESTORE 13    /* source: Wait::kRestore */
#define W_RESUME 14     /* source: Wait::kResume */
#define W_TOFFER 15     /* target: Wait::kOfferRead */
#define W_RESERVE 16    /* target: Wait::kReserve */
#define W_CWAIT 17      /* target: Wait::kCommitWait */
#define W_TREAD 18      /* target: Wait::kTargetRead */
#define W_CCAS 19       /* target: Wait::kCommitCas */
#define W_VCAS 20       /* target: Wait::kVetoCas */
#define W_ATTACH 21     /* target: Wait::kAttach */
#define W_RELRES 22     /* target: Wait::kReleaseReservation */
#define W_RETRY 23      /* either: Wait::kRetry, redoes retry[n] */
#define W_EATTACH 24    /* BUG_OPEN_BEFORE_CAS only: attach, then commit CAS */
#define W_HANDOFF 25    /* source: Wait::kHandOff (the one kernel call) */
#define W_ARM 26        /* target: Wait::kArm */
#define W_REPAIR 30     /* RepairNic's call (slot 0, no handover) */
#define W_MREAD 31      /* maintenance: kReading */
#define W_MQUIESCE 32   /* maintenance: kQuiescing */
#define W_MRESUME 33    /* maintenance: kResuming */

/* Roles. */
#define SRC 1
#define TGT 2

/* Journal kinds (journal_record.proto; FAILED is R2's durable FAILED step). */
#define J_NONE 0
#define J_SRC 1
#define J_TGT 2
#define J_DONE 3
#define J_FAILED 4

mtype = { OFFER, OFFERK, ACCEPT, ACCEPTK, REFUSE, COMMIT, COMMITTED, NOTCOMMITTED, ABORT };
/* OFFERK: Offer with commit_path kernel allowed; ACCEPTK: Accept armed=true. */

/* ------------------------------------------------------------ shared state */

byte rs = ACTIVE, ro = S, rt = S, re = 1;  /* the ownership record */
byte hk[2];              /* hook state per node (kernel: survives crashes) */
byte hk_e[2], hk_i[2], hk_c[2];  /* highest accepted fence (epoch, incarnation, counter) */
bit irq = S;             /* whose vectors the NIC's MSI messages name */
bit masked = 0;          /* vectors masked (Restore masks, Resume unmasks: R5) */
bit resv;                /* T's reservation */

/* Kernels (survive their daemon; a kernel crash loses arm, doorbell, events). */
bit arm[2];              /* armed for HANDOFF(1-n, n, arm_e[n]) */
byte arm_e[2];
bit db[2];               /* a doorbell pending at node n's kernel */
byte db_e[2];            /* the epoch it carries */
bit db_h[2];             /* rung by a HandOff (not by hand) */
bit kattach[2];          /* the kernel's CAS won; its attach is still to come */
byte kev[2];             /* pending kernel event: 0, KEV_COMMITTED, KEV_NOTCOMMITTED */
bit kcommitted[2];       /* ghost: node n's kernel made a commit */

/* Journals (durable). The newest handover of each node is all that matters. */
byte j_kind[2], j_e0[2], j_retry[2], j_role[2];
bit j_prev[2];

/* Platform call slots: 3 per node (0: handover/repair/maintenance, 1: operator
 * recovery, 2: late call of a dead or given-up instance). */
byte op_k[6], op_e[6], op_i[6], op_c[6], op_x[6], op_d[6];
bit op_a[6];             /* REROUTE/RESTORE: the node the messages name */
bit res_ok[6];           /* result of slots 0 and 1 */
byte res_rec[6];
bit res_arg[6];
bit res_ready[6];
byte res_k[6];          /* the kind of call the result is of */

/* Network: requests and answers in flight to each node: type, epoch, the
 * caller's incarnation (an answer to a dead caller is dropped). */
chan net[2] = [3] of { mtype, byte, byte };

/* --------------------------------------------------- daemon (volatile) state */

bit up[2];
byte inc[2];             /* incarnation: survives (op ids grow across restarts) */
byte role[2], w[2], e0[2], e1[2], ea[2];
bit prev[2];             /* source: routing before the handover */
bit mayq[2], hof[2], offer_sent[2], abort_sent[2], has_known[2];
byte known[2];           /* the record as last read (handover) */
byte seen_e[2];          /* KnownEpoch: highest epoch seen (records, hooks) */
bit veto_ok[2], committed[2], abort_req[2], cpend[2], opend[2];
byte opend_i[2], cpend_i[2];  /* caller incarnation of the pending Offer/Commit */
byte retry[2];           /* what W_RETRY (or an operator) redoes */
bit rcas[2];             /* operator recovery: slot 1 holds the decision's CAS */
bit failed[2];           /* a FAILED handover not yet decided (in memory) */
byte f_e0[2];            /* its epochs */
bit f_prev[2];
byte f_role[2];
byte abortu[2];          /* Abort seen before its Offer: that epoch */
byte maint[2];           /* 0, or W_MREAD.. while quiescing/held (1 = held) */
byte maint_e[2];
bit done_ok[2];          /* last handover COMMITTED (answers a late Commit) */
bit kp[2];               /* source: the offer allows the kernel path; target: offered it */
bit karmed[2];           /* source: Accept said armed; target: this daemon armed */
byte started_e1[2];      /* target: epoch of a started (journalled) offer */

/* Budgets. */
byte crashes = CRASHES, opfails = OPFAILS, hangs = HANGS, losses = LOSSES, dups = DUPS;
byte handovers = HANDOVERS, cancels = CANCELS, recovers = RECOVERS, maints = MAINTS;
byte giveups = GIVEUPS;
byte kcrashes = KCRASHES, dblosses = DBLOSSES, staledbs = STALEDBS;

/* Scratch, used only inside atomic steps; hidden: not part of the state. */
hidden byte tmp, tmp2, s;
hidden mtype m, nm;
hidden byte me, mi, ne, ni;
hidden byte r_ok, r_arg;
hidden byte r_rec, mv;
hidden byte cont;        /* the HandOff's CAS won: its doorbell step follows */

/* ------------------------------------------------------------ invariants */

/* Never two nodes with an open data path; an open data path has the
 * interrupts routed to it. (Masked vectors are allowed between a Restore and
 * the Resume that follows it, R5; a settled state has them unmasked. The
 * epoch invariant is asserted in the CAS.) */
#define ONE_RUNNER (!(hk[S] == RUNNING && hk[T] == RUNNING))
#define RUNNER_HAS_IRQ ((hk[S] != RUNNING || irq == S) && (hk[T] != RUNNING || irq == T))


/* ------------------------------------------------------------ platform */

/* R3: (epoch, op_id) with op_id = incarnation<<32 | counter. */
#ifdef BUG_NO_OP_FENCE
#define FENCE_OK(n, s) (op_e[s] >= hk_e[n])
#else
#define FENCE_OK(n, s) (op_e[s] > hk_e[n] || \
  (op_e[s] == hk_e[n] && (op_i[s] > hk_i[n] || (op_i[s] == hk_i[n] && op_c[s] >= hk_c[n]))))
#endif

#ifdef BUG_CAS_NO_EPOCH
#define CAS_MATCH(x) (RST(x) == rs && ROWN(x) == ro && (((x) >> 3) & 1) == rt)
#else
#define CAS_MATCH(x) ((x) == CUR)
#endif

/* Applies the call in slot s of node n to the shared state; the result goes
 * to res_*[s]. A fenced call that is refused has no effect. */
/* The doorbell of node `to`'s kernel, carrying the NIC's epoch; `h` marks a
 * doorbell rung by a HandOff (not by hand). A pending one is replaced. */
inline ring(to, e, h) {
  db[to] = 1; db_e[to] = e; db_h[to] = h
}

/* The HandOff's doorbell: rung, or lost on the fabric (or its kernel died
 * before ringing it; the target daemon commits on Commit or its timer). */
inline ring_or_lose(n, s) {
  if
  :: dblosses > 0 && FAULTY(n) -> dblosses--
  :: true -> ring(1 - n, op_e[s], 1)
  fi
}

/* The HandOff's CAS PREPARING(S, T, e1) -> HANDOFF(S, T, e1). */
inline handoff_cas(s) {
  if
  :: CAS_MATCH(op_x[s]) ->
     assert(REP(op_d[s]) >= re);
     rs = RST(op_d[s]); ro = ROWN(op_d[s]); rt = (op_d[s] >> 3) & 1; re = REP(op_d[s])
  :: else -> skip
  fi;
  res_rec[s] = CUR
}

/* FastPath::HandOff (Kernel::HandOff, NH_CMD_HANDOFF) in two atomic steps:
 * this one up to the CAS, then (OP_DOORBELL, if the CAS won) the doorbell,
 * so that a daemon crash, a hang or a kernel crash may come between them.
 * A failure after the gate closed (drain timeout, read-back mismatch)
 * leaves the NIC quiesced and rerouted, with the record PREPARING. */
inline handoff_first(n, s) {
#if defined(HANDOFF_CAS_BEFORE_QUIESCE)
  handoff_cas(s);
  if :: res_rec[s] == op_d[s] -> ring_or_lose(n, s); cont = 1 :: else -> skip fi
#elif defined(DOORBELL_BEFORE_CAS)
  hk[n] = QUIESCED; irq = op_a[s];
  ring_or_lose(n, s); cont = 1
#else
  hk[n] = QUIESCED; irq = op_a[s];
  if
  :: opfails > 0 && FAULTY(n) && (s % 3) != 2 -> opfails--; res_ok[s] = 0
  :: true -> handoff_cas(s); cont = (res_rec[s] == op_d[s])
  fi
#endif
}

inline handoff_second(n, s) {
#if defined(HANDOFF_CAS_BEFORE_QUIESCE)
  hk[n] = QUIESCED; irq = op_a[s]
#elif defined(DOORBELL_BEFORE_CAS)
  handoff_cas(s)
#else
  ring_or_lose(n, s)
#endif
}

inline apply(n, s) {
  res_ok[s] = 1;
  if
  :: op_k[s] == OP_DOORBELL -> handoff_second(n, s)
  :: op_k[s] == OP_READ -> res_rec[s] = CUR
  :: op_k[s] == OP_CAS ->
     if
     :: CAS_MATCH(op_x[s]) ->
        assert(REP(op_d[s]) >= re);  /* epochs in the record only grow */
        rs = RST(op_d[s]); ro = ROWN(op_d[s]); rt = (op_d[s] >> 3) & 1; re = REP(op_d[s])
     :: else -> skip
     fi;
     res_rec[s] = CUR
  :: op_k[s] == OP_READMSG -> res_arg[s] = irq
  :: op_k[s] >= OP_QUIESCE && op_k[s] != OP_DOORBELL ->
     if
     :: FENCE_OK(n, s) ->
        hk_e[n] = op_e[s]; hk_i[n] = op_i[s]; hk_c[n] = op_c[s];
        if
        :: op_k[s] == OP_QUIESCE ->
           if :: hk[n] == DETACHED -> res_ok[s] = 0 :: else -> hk[n] = QUIESCED fi
        :: op_k[s] == OP_RESUME ->
           if :: hk[n] == DETACHED -> res_ok[s] = 0 :: else -> hk[n] = RUNNING; masked = 0 fi
        :: op_k[s] == OP_ATTACH -> hk[n] = RUNNING; masked = 0
        :: op_k[s] == OP_RELEASE -> hk[n] = DETACHED
        :: op_k[s] == OP_REROUTE -> irq = op_a[s]
        :: op_k[s] == OP_RESTORE -> irq = op_a[s]; masked = 1
        :: op_k[s] == OP_RESERVE -> resv = 1
        :: op_k[s] == OP_RELRES -> resv = 0; arm[n] = 0  /* disarms */
        :: op_k[s] == OP_ARM ->
           if :: resv -> arm[n] = 1; arm_e[n] = op_e[s] :: else -> res_ok[s] = 0 fi
        :: op_k[s] == OP_HANDOFF ->
           if :: hk[n] == DETACHED -> res_ok[s] = 0 :: else -> handoff_first(n, s) fi
        fi
     :: else -> res_ok[s] = 0  /* stale fence: FAILED_PRECONDITION */
     fi
  fi
}

/* The platform serving call slot sl (node sl / 3): one process per slot, so
 * that under weak fairness a call waiting in a slot is eventually applied
 * however busy the other slots are. */
proctype Platform(byte sl) {
end_platform:
  do
  :: atomic { op_k[sl] != NONE -> s = sl;
       if :: op_k[s] != OP_DOORBELL -> res_k[s] = op_k[s] :: else -> skip fi;
       if
       :: op_k[s] == OP_DOORBELL ->  /* the HandOff goes on: no new failure */
          apply(s / 3, s);
          res_ready[s] = ((s % 3) != 2)
       :: opfails > 0 && (s % 3) != 2 && FAULTY(s / 3) && op_k[s] != OP_DOORBELL ->  /* fails before any effect */
          opfails--; res_ok[s] = 0; res_ready[s] = 1
       :: hangs > 0 && (s % 3) == 0 && op_k[s + 2] == NONE && FAULTY(s / 3) &&
          op_k[s] != OP_DOORBELL ->  /* hangs; given up on */
          hangs--;
          op_k[s + 2] = op_k[s]; op_e[s + 2] = op_e[s]; op_i[s + 2] = op_i[s];
          op_c[s + 2] = op_c[s]; op_x[s + 2] = op_x[s]; op_d[s + 2] = op_d[s];
          op_a[s + 2] = op_a[s];
          res_ok[s] = 0; res_ready[s] = 1  /* the step's timeout: DEADLINE_EXCEEDED */
       :: op_k[s] != OP_DOORBELL ->
          apply(s / 3, s);
          res_ready[s] = ((s % 3) != 2)
       fi;
       if
       :: cont -> op_k[s] = OP_DOORBELL; res_ready[s] = 0  /* the HandOff's second step */
       :: else -> op_k[s] = NONE
       fi;
       cont = 0; s = 0
     }
  od
}

/* ------------------------------------------------------------ daemon steps */

/* Next counter for a call of node n at epoch e: above every live fence of
 * that (epoch, incarnation), so later calls of this instance are newer.
 * (Counters are renumbered among the live ones, which keeps them small and
 * keeps every comparison the kernel can make.) */
inline next_count(n, e) {
  tmp2 = 0;
  if :: hk_e[n] == e && hk_i[n] == inc[n] && hk_c[n] > tmp2 -> tmp2 = hk_c[n] :: else -> skip fi;
  if :: op_k[3*n] != NONE && op_e[3*n] == e && op_i[3*n] == inc[n] && op_c[3*n] > tmp2 -> tmp2 = op_c[3*n] :: else -> skip fi;
  if :: op_k[3*n+1] != NONE && op_e[3*n+1] == e && op_i[3*n+1] == inc[n] && op_c[3*n+1] > tmp2 -> tmp2 = op_c[3*n+1] :: else -> skip fi;
  if :: op_k[3*n+2] != NONE && op_e[3*n+2] == e && op_i[3*n+2] == inc[n] && op_c[3*n+2] > tmp2 -> tmp2 = op_c[3*n+2] :: else -> skip fi;
  tmp2 = tmp2 + 1
}

/* Puts a call into slot s (0 or 1) of node n. A call still in the slot (given
 * up on: its result would be ignored) moves to the late slot if that is free,
 * else it is lost before it ran. */
inline issue(n, sl, kind, e, x, d, a) {
  if
  :: op_k[3*n+sl] != NONE && op_k[3*n+2] == NONE ->
     op_k[3*n+2] = op_k[3*n+sl]; op_e[3*n+2] = op_e[3*n+sl]; op_i[3*n+2] = op_i[3*n+sl];
     op_c[3*n+2] = op_c[3*n+sl]; op_x[3*n+2] = op_x[3*n+sl]; op_d[3*n+2] = op_d[3*n+sl];
     op_a[3*n+2] = op_a[3*n+sl]
  :: else -> skip
  fi;
  res_ready[3*n+sl] = 0;
  next_count(n, e);
  op_k[3*n+sl] = kind; op_e[3*n+sl] = e; op_i[3*n+sl] = inc[n]; op_c[3*n+sl] = tmp2;
  op_x[3*n+sl] = x; op_d[3*n+sl] = d; op_a[3*n+sl] = a
}

inline step(n, wt, kind, e, x, d, a) {
  w[n] = wt;
  issue(n, 0, kind, e, x, d, a)
}

inline send(to, m, e, i) {
  if
  :: len(net[to]) >= 3 -> skip  /* the network is full: lost */
  :: else -> net[to]!m, e, i
  fi
}

inline see(n, r) {
  if :: REP(r) > seen_e[n] -> seen_e[n] = REP(r) :: else -> skip fi
}

inline finish(n, ok) {
  w[n] = NONE; role[n] = NONE; done_ok[n] = ok;
  j_kind[n] = J_DONE;
  if :: ok && cpend[n] -> send(1 - n, COMMITTED, e1[n], cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
  if :: opend[n] -> send(1 - n, REFUSE, e1[n], opend_i[n]); opend[n] = 0 :: else -> skip fi
}

/* RetryLater: redo the step later, or (max_retries exceeded) give up: FAILED.
 * R2: the FAILED step is journalled with what redoing it needs. */
inline retry_later(n, redo) {
  retry[n] = redo;
  if
  :: giveups > 0 ->
     giveups--;
     failed[n] = 1; f_e0[n] = e0[n]; f_prev[n] = prev[n]; f_role[n] = role[n];
     j_kind[n] = J_FAILED; j_e0[n] = e0[n]; j_prev[n] = prev[n]; j_retry[n] = redo;
     j_role[n] = role[n];
     if :: cpend[n] -> send(1 - n, NOTCOMMITTED, e1[n], cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
     w[n] = NONE; role[n] = NONE
  :: else -> w[n] = W_RETRY
  fi
}

/* Issues the call a wait stands for (IssueStepOp), from the handover's fields. */
inline redo_step(n, wt) {
  if
  :: wt == W_OREAD || wt == W_AREAD || wt == W_TREAD -> step(n, wt, OP_READ, 0, 0, 0, 0)
  :: wt == W_RELEASE -> step(n, wt, OP_RELEASE, e1[n], 0, 0, 0)
  :: wt == W_RESTORE -> step(n, wt, OP_RESTORE, ea[n], 0, 0, prev[n])
  :: wt == W_RESUME -> step(n, wt, OP_RESUME, ea[n], 0, 0, 0)
  :: wt == W_ATTACH -> step(n, wt, OP_ATTACH, e1[n], 0, 0, 0)
  :: wt == W_RELRES -> step(n, wt, OP_RELRES, e1[n], 0, 0, 0)
  fi
}

/* SourceReconcile: decide from the record as it stands. */
inline source_reconcile(n, r) {
  known[n] = r; has_known[n] = 1;
  if
  :: r == REC(ACTIVE, n, n, e0[n]) || r == REC(PREPARING, n, 1 - n, e1[n]) ->
     hof[n] = 0;
     step(n, W_ACAS, OP_CAS, 0, r, REC(ACTIVE, n, n, ea[n]), 0)
  :: r == REC(HANDOFF, n, 1 - n, e1[n]) ->
     hof[n] = 1; w[n] = W_COMMIT; send(1 - n, COMMIT, e1[n], inc[n])
  :: r == REC(ACTIVE, n, n, ea[n]) ->
     if
     :: offer_sent[n] && !abort_sent[n] -> abort_sent[n] = 1; send(1 - n, ABORT, e1[n], inc[n])
     :: else -> skip
     fi;
     if
     :: mayq[n] -> step(n, W_RESTORE, OP_RESTORE, ea[n], 0, 0, prev[n])
     :: else -> finish(n, 0)
     fi
  :: r == REC(ACTIVE, 1 - n, 1 - n, e1[n]) || REP(r) > e1[n] ->
     hof[n] = 1; step(n, W_RELEASE, OP_RELEASE, e1[n], 0, 0, 0)
  :: else ->  /* RECORD_CONTRADICTS: FAILED, nothing to redo */
     retry[n] = NONE; failed[n] = 1; f_e0[n] = e0[n]; f_prev[n] = prev[n]; f_role[n] = SRC;
     j_kind[n] = J_FAILED; j_e0[n] = e0[n]; j_prev[n] = prev[n]; j_retry[n] = NONE; j_role[n] = SRC;
     w[n] = NONE; role[n] = NONE
  fi
}

inline begin_abort(n) {
  if
  :: has_known[n] -> source_reconcile(n, known[n])
  :: else -> step(n, W_AREAD, OP_READ, 0, 0, 0, 0)
  fi
}

/* TargetReconcile. */
inline target_reconcile(n, r, may_veto) {
  known[n] = r; veto_ok[n] = 0;
  if
  :: r == REC(HANDOFF, 1 - n, n, e1[n]) ->
#ifdef BUG_OPEN_BEFORE_CAS
     step(n, W_EATTACH, OP_ATTACH, e1[n], 0, 0, 0)
#else
     /* ISSUE 14 (fast path), NOT MODELLED YET: the kernel-side commit will
      * replace or precede this commit CAS; model it here when it exists. */
     step(n, W_CCAS, OP_CAS, 0, r, REC(ACTIVE, n, n, e1[n]), 0)
#endif
  :: r == REC(ACTIVE, n, n, e1[n]) ->
     committed[n] = 1;
     if :: cpend[n] -> send(1 - n, COMMITTED, e1[n], cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
     step(n, W_ATTACH, OP_ATTACH, e1[n], 0, 0, 0)
  :: r == REC(PREPARING, 1 - n, n, e1[n]) ->
     if :: cpend[n] -> send(1 - n, NOTCOMMITTED, e1[n], cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
     w[n] = W_CWAIT
  :: r == REC(ACTIVE, 1 - n, 1 - n, e0[n]) ->
     if :: cpend[n] -> send(1 - n, NOTCOMMITTED, e1[n], cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
     if
     :: may_veto -> step(n, W_VCAS, OP_CAS, 0, r, REC(ACTIVE, 1 - n, 1 - n, ea[n]), 0)
     :: else -> w[n] = W_CWAIT
     fi
  :: else ->  /* moved past this offer */
     if :: cpend[n] -> send(1 - n, NOTCOMMITTED, e1[n], cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
     step(n, W_RELRES, OP_RELRES, e1[n], 0, 0, 0)
  fi
}

/* A daemon's volatile state at a (re)start. */
inline forget(n) {
  role[n] = NONE; w[n] = NONE; e0[n] = 0; e1[n] = 0; ea[n] = 0; prev[n] = 0;
  mayq[n] = 0; hof[n] = 0; offer_sent[n] = 0; abort_sent[n] = 0; has_known[n] = 0;
  known[n] = 0; seen_e[n] = 0; veto_ok[n] = 0; committed[n] = 0; abort_req[n] = 0;
  cpend[n] = 0; opend[n] = 0; opend_i[n] = 0; cpend_i[n] = 0; retry[n] = 0; failed[n] = 0;
  f_e0[n] = 0; f_prev[n] = 0; f_role[n] = 0; abortu[n] = 0; maint[n] = 0; maint_e[n] = 0;
  done_ok[n] = 0; started_e1[n] = 0; kp[n] = 0; karmed[n] = 0;
  res_ready[3*n] = 0; res_ready[3*n+1] = 0
}

/* The calls a dead daemon left behind: one may still land (late slot). */
inline orphan(n, sl) {
  if
  :: op_k[3*n+sl] != NONE && op_k[3*n+2] == NONE ->
     op_k[3*n+2] = op_k[3*n+sl]; op_e[3*n+2] = op_e[3*n+sl]; op_i[3*n+2] = op_i[3*n+sl];
     op_c[3*n+2] = op_c[3*n+sl]; op_x[3*n+2] = op_x[3*n+sl]; op_d[3*n+2] = op_d[3*n+sl];
     op_a[3*n+2] = op_a[3*n+sl]
  :: else -> skip
  fi;
  op_k[3*n+sl] = NONE
}

/* OnRecover: the journal replayed, the record and the hook read. */
inline recover(n) {
  seen_e[n] = re;
  if :: hk_e[n] > seen_e[n] -> seen_e[n] = hk_e[n] :: else -> skip fi;
  if
  :: j_kind[n] == J_SRC ->
     role[n] = SRC; e0[n] = j_e0[n]; e1[n] = e0[n] + 1; ea[n] = e0[n] + 2; prev[n] = j_prev[n];
     offer_sent[n] = 1; mayq[n] = 1; hof[n] = 1;
     source_reconcile(n, CUR)
  :: j_kind[n] == J_TGT ->
     role[n] = TGT; e0[n] = j_e0[n]; e1[n] = e0[n] + 1; ea[n] = e0[n] + 2;
     started_e1[n] = e1[n];
     target_reconcile(n, CUR, 0)
  :: j_kind[n] == J_FAILED ->
     /* R2: the FAILED step survives; RepairNic leaves the NIC to the operator. */
     failed[n] = 1; f_e0[n] = j_e0[n]; f_prev[n] = j_prev[n]; retry[n] = j_retry[n];
     f_role[n] = j_role[n]
  :: else ->  /* RepairNic */
     if
     :: rs == PREPARING && ro == n ->
        if
        :: hk[n] == RUNNING ->  /* R4: roll back to a fresh epoch, then resume there */
           w[n] = W_REPAIR; issue(n, 0, OP_CAS, 0, CUR, REC(ACTIVE, n, n, re + 1), 0)
        :: else -> skip  /* documented: `nicctl recover --decide abort` */
        fi
     :: rs == ACTIVE && ro == n && hk[n] == QUIESCED ->
        if :: re > hk_e[n] -> tmp = re :: else -> tmp = hk_e[n] fi;
        w[n] = W_REPAIR; issue(n, 0, OP_RESUME, tmp, 0, 0, 0)
     :: !(rs == ACTIVE && ro == n) && hk[n] != DETACHED ->
        if :: re > hk_e[n] -> tmp = re :: else -> tmp = hk_e[n] fi;
        w[n] = W_REPAIR; issue(n, 0, OP_RELEASE, tmp, 0, 0, 0)
     :: else -> skip
     fi
  fi
}

/* ------------------------------------------------------------ the daemon */

/* The daemon of node n, one process per event source (the engine's queue
 * takes events from each of them): spin's weak fairness is per process, so
 * with each source its own process a source that stays enabled is
 * eventually served (docs/protocol.md, "Progress"). Each step is atomic and
 * reads and writes the node's state as one event of the machine does. */
/* The daemon's restart (the init system restarts a crashed daemon). */
proctype DaemonRestart(byte n) {
end_daemonrestart:
  do
  /* ---- restart of a crashed daemon */
  :: atomic { !up[n] -> up[n] = 1; inc[n]++; forget(n); recover(n) }

  od
}

/* Crashes of the daemon, within the budget. */
proctype DaemonCrash(byte n) {
end_daemoncrash:
  do
  /* ---- crash at any step: volatile state gone, open calls may land late */
  :: atomic { up[n] && crashes > 0 && FAULTY(n) -> crashes--; up[n] = 0; orphan(n, 0); orphan(n, 1);
              forget(n) }

  od
}

/* The operator's requests on this node. */
proctype Operator(byte n) {
end_operator:
  do
  /* ---- operator: CreateHandover on this node (R1: a FAILED one blocks) */
  :: atomic { up[n] && handovers > 0 && CREATES(n) && role[n] == NONE && w[n] == NONE && maint[n] == 0 &&
#ifndef BUG_FAILED_NOT_BLOCKING
              !failed[n] &&
#endif
              op_k[3*n] == NONE ->
       handovers--; role[n] = SRC; mayq[n] = 0; hof[n] = 0; offer_sent[n] = 0;
       abort_sent[n] = 0; has_known[n] = 0; failed[n] = 0; done_ok[n] = 0; karmed[n] = 0;
       /* --commit-path daemon, or auto/kernel (the kernel path if both can) */
#if PATHS == 1
       kp[n] = 0;
#elif PATHS == 2
       kp[n] = 1;
#else
       if :: kp[n] = 0 :: kp[n] = 1 fi;
#endif
       step(n, W_READ, OP_READ, 0, 0, 0, 0) }

  /* ---- operator: CancelHandover (before the commit point only) */
  :: atomic { up[n] && cancels > 0 && role[n] == SRC && !hof[n] && w[n] >= W_OFFER &&
              w[n] <= W_REROUTE ->
       cancels--; begin_abort(n) }

  /* ---- operator: RecoverNic --decide abort|commit on this node */
  :: atomic { up[n] && recovers > 0 && MAY_RECOVER && op_k[3*n+1] == NONE ->
       recovers--; rcas[n] = 0; issue(n, 1, OP_READ, 0, 0, 0, 0) }

  /* ---- operator: maintenance QuiesceNic / ResumeNic */
  :: atomic { up[n] && maints > 0 && role[n] == NONE && maint[n] == 0 && w[n] == NONE ->
       maints--; maint[n] = W_MREAD; w[n] = W_MREAD; issue(n, 0, OP_READ, 0, 0, 0, 0) }
  :: atomic { up[n] && maint[n] == 1 && w[n] == NONE ->
       maint[n] = W_MRESUME; w[n] = W_MRESUME; issue(n, 0, OP_RESUME, maint_e[n], 0, 0, 0) }

  od
}

/* The daemon's timers (the engine's clock). */
proctype Timers(byte n) {
end_timers:
  do
  /* ---- timers: a retry, the commit wait / veto, the outcome poll, the
   * offer's deadline. A poll that would read the record it already knows
   * and do the same again is left out (a stutter step). */
  :: atomic { up[n] && w[n] == W_RETRY -> redo_step(n, retry[n]) }
  :: atomic { up[n] && w[n] == W_CWAIT && (known[n] != CUR || known[n] == REC(ACTIVE, 1 - n, 1 - n, e0[n])) &&
              DAEMON_MAY_COMMIT(n) ->
       veto_ok[n] = 1; step(n, W_TREAD, OP_READ, 0, 0, 0, 0) }
  :: atomic { up[n] && w[n] == W_COMMIT && (known[n] != CUR || (len(net[1 - n]) == 0 && len(net[n]) == 0)) ->
       step(n, W_OREAD, OP_READ, 0, 0, 0, 0) }
  :: atomic { up[n] && w[n] == W_OFFER -> begin_abort(n) }

  od
}

/* The kernel's events as the daemon reads them (FastPath::WaitEvents). */
proctype KernelEvents(byte n) {
end_kernelevents:
  do
  /* ---- a kernel event (FastPath::WaitEvents): a waiting target looks at
   * the record (the kernel committed: attach; it did not: as the record says) */
  :: atomic { up[n] && kev[n] != 0 ->
       kev[n] = 0;
       if
       :: role[n] == TGT && w[n] == W_CWAIT -> veto_ok[n] = 0; step(n, W_TREAD, OP_READ, 0, 0, 0, 0)
       :: else -> skip
       fi }

  od
}

/* Results of the operator recovery's calls (slot 1). */
proctype RecoveryResults(byte n) {
end_recoveryresults:
  do
  /* ---- operator recovery's read and CAS (slot 1) */
  :: atomic { up[n] && res_ready[3*n+1] ->
       res_ready[3*n+1] = 0; r_ok = res_ok[3*n+1]; r_rec = res_rec[3*n+1];
       if
       :: !r_ok -> skip  /* UNAVAILABLE to the operator */
       :: r_ok && rcas[n] ->  /* the decision's CAS landed (or not): reconcile */
          see(n, r_rec);
          if
          :: role[n] == SRC && REP(r_rec) >= e1[n] && w[n] != NONE -> source_reconcile(n, r_rec)
          :: role[n] == TGT && REP(r_rec) >= e1[n] && w[n] != NONE -> target_reconcile(n, r_rec, 0)
          :: else -> skip
          fi
       :: r_ok && !rcas[n] && RST(r_rec) == ACTIVE ->
          see(n, r_rec);
          /* A FAILED handover is redone from its step (the operator decided). */
          if
          :: failed[n] && role[n] == NONE && w[n] == NONE && retry[n] != NONE &&
             (REP(r_rec) == f_e0[n] + 1 || REP(r_rec) == f_e0[n] + 2) ->
             failed[n] = 0; role[n] = f_role[n]; e0[n] = f_e0[n]; e1[n] = e0[n] + 1;
             ea[n] = e0[n] + 2; prev[n] = f_prev[n]; mayq[n] = 1; hof[n] = 1; offer_sent[n] = 0;
             redo_step(n, retry[n])
          :: else -> skip  /* nothing to decide */
          fi
       :: r_ok && !rcas[n] && RST(r_rec) != ACTIVE ->
          see(n, r_rec);
          if
          :: RST(r_rec) == HANDOFF && ((r_rec >> 3) & 1) == n && role[n] == TGT &&
             e1[n] == REP(r_rec) ->  /* COMMIT, on the target */
             issue(n, 1, OP_CAS, 0, r_rec, REC(ACTIVE, n, n, REP(r_rec)), 0)
          :: true ->  /* ABORT, any node */
             issue(n, 1, OP_CAS, 0, r_rec, REC(ACTIVE, ROWN(r_rec), ROWN(r_rec), REP(r_rec) + 1), 0)
          fi;
          rcas[n] = 1
       fi }

  od
}

/* Results of the handover's, repair's and maintenance's calls (slot 0). */
proctype Results(byte n) {
end_results:
  do
  /* ---- a platform call's result (slot 0) */
  :: atomic { up[n] && res_ready[3*n] ->
       res_ready[3*n] = 0; r_ok = res_ok[3*n]; r_rec = res_rec[3*n]; r_arg = res_arg[3*n];
       if
       :: (res_k[3*n] == OP_READ || res_k[3*n] == OP_CAS) && r_ok -> see(n, r_rec)
       :: else -> skip
       fi;
       op_k[3*n] = NONE;
       if
       /* source */
       :: w[n] == W_READ ->
          if
          :: r_ok && RST(r_rec) == ACTIVE && ROWN(r_rec) == n ->
             e0[n] = REP(r_rec); e1[n] = e0[n] + 1; ea[n] = e0[n] + 2;
             known[n] = r_rec; has_known[n] = 1;
             step(n, W_READMSG, OP_READMSG, 0, 0, 0, 0)
          :: else -> w[n] = NONE; role[n] = NONE  /* FailCreate */
          fi
       :: w[n] == W_READMSG ->
          if
          :: r_ok ->
             prev[n] = r_arg;
#ifndef BUG_SKIP_JOURNAL
             j_kind[n] = J_SRC; j_e0[n] = e0[n]; j_prev[n] = prev[n]; j_role[n] = SRC;
#endif
             offer_sent[n] = 1; w[n] = W_OFFER;
             if
             :: kp[n] -> send(1 - n, OFFERK, e1[n], inc[n])
             :: else -> send(1 - n, OFFER, e1[n], inc[n])
             fi
          :: else -> w[n] = NONE; role[n] = NONE
          fi
       :: w[n] == W_PCAS ->
          if
          :: !r_ok -> has_known[n] = 0; begin_abort(n)
          :: r_ok && r_rec == REC(PREPARING, n, 1 - n, e1[n]) && karmed[n] ->
             /* the kernel path: one HandOff call (cancel no longer honoured) */
             hof[n] = 1; has_known[n] = 0;
             step(n, W_HANDOFF, OP_HANDOFF, e1[n], r_rec, REC(HANDOFF, n, 1 - n, e1[n]), 1 - n)
          :: r_ok && r_rec == REC(PREPARING, n, 1 - n, e1[n]) && !karmed[n] ->
             known[n] = r_rec; has_known[n] = 1; step(n, W_QUIESCE, OP_QUIESCE, e1[n], 0, 0, 0)
          :: else -> known[n] = r_rec; has_known[n] = 1; begin_abort(n)
          fi
       :: w[n] == W_QUIESCE ->
          if
          :: r_ok -> step(n, W_REROUTE, OP_REROUTE, e1[n], 0, 0, 1 - n)
          :: else -> begin_abort(n)
          fi
       :: w[n] == W_REROUTE ->
          if
          :: r_ok ->  /* (WriteHandoffRings: rings are not modelled) */
             hof[n] = 1; has_known[n] = 0;
             step(n, W_HCAS, OP_CAS, 0, REC(PREPARING, n, 1 - n, e1[n]),
                  REC(HANDOFF, n, 1 - n, e1[n]), 0)
          :: else -> begin_abort(n)
          fi
       :: w[n] == W_HCAS || w[n] == W_HANDOFF ->  /* an error: read the record, reconcile */
          if
          :: r_ok -> source_reconcile(n, r_rec)
          :: else -> step(n, W_OREAD, OP_READ, 0, 0, 0, 0)
          fi
       :: w[n] == W_OREAD || w[n] == W_AREAD ->
          if
          :: r_ok -> source_reconcile(n, r_rec)
          :: else -> retry_later(n, w[n])
          fi
       :: w[n] == W_ACAS ->
          if
          :: r_ok -> source_reconcile(n, r_rec)
          :: else -> has_known[n] = 0; retry_later(n, W_AREAD)
          fi
       :: w[n] == W_RELEASE ->
          if :: r_ok -> finish(n, 1) :: else -> retry_later(n, W_RELEASE) fi
       :: w[n] == W_RESTORE ->
          if
          :: r_ok -> step(n, W_RESUME, OP_RESUME, ea[n], 0, 0, 0)
          :: else -> retry_later(n, W_RESTORE)
          fi
       :: w[n] == W_RESUME ->
          if :: r_ok -> finish(n, 0) :: else -> retry_later(n, W_RESUME) fi
       /* target */
       :: w[n] == W_TOFFER ->
          if
          :: r_ok && r_rec == REC(ACTIVE, 1 - n, 1 - n, e0[n]) && abortu[n] != e1[n] ->
             j_kind[n] = J_TGT; j_e0[n] = e0[n]; j_role[n] = TGT; started_e1[n] = e1[n];
             known[n] = r_rec;
             step(n, W_RESERVE, OP_RESERVE, e1[n], 0, 0, 0)
          :: else ->  /* DropOffer */
             if :: opend[n] -> send(1 - n, REFUSE, e1[n], opend_i[n]); opend[n] = 0 :: else -> skip fi;
             w[n] = NONE; role[n] = NONE
          fi
       :: w[n] == W_RESERVE ->
          if
          :: r_ok && !abort_req[n] && kp[n] ->  /* the kernel path: arm first */
             step(n, W_ARM, OP_ARM, e1[n], 0, 0, 0)
          :: r_ok && !abort_req[n] && !kp[n] ->
             if :: opend[n] -> send(1 - n, ACCEPT, e1[n], opend_i[n]); opend[n] = 0 :: else -> skip fi;
             w[n] = W_CWAIT
          :: else ->
             if :: opend[n] -> send(1 - n, REFUSE, e1[n], opend_i[n]); opend[n] = 0 :: else -> skip fi;
             step(n, W_RELRES, OP_RELRES, e1[n], 0, 0, 0)
          fi
       :: w[n] == W_ARM ->  /* armed: Accept(armed); not: Accept (auto: the daemon path) */
          karmed[n] = r_ok;
          if
          :: opend[n] && r_ok -> send(1 - n, ACCEPTK, e1[n], opend_i[n]); opend[n] = 0
          :: opend[n] && !r_ok -> send(1 - n, ACCEPT, e1[n], opend_i[n]); opend[n] = 0
          :: else -> skip
          fi;
          w[n] = W_CWAIT
       :: w[n] == W_TREAD ->
          if
          :: r_ok -> mv = veto_ok[n]; target_reconcile(n, r_rec, mv)
          :: else -> retry_later(n, W_TREAD)
          fi
       :: w[n] == W_VCAS || w[n] == W_CCAS ->
          if
          :: r_ok -> target_reconcile(n, r_rec, 0)
          :: else -> retry_later(n, W_TREAD)
          fi
       :: w[n] == W_EATTACH ->
          if
          :: r_ok -> step(n, W_CCAS, OP_CAS, 0, REC(HANDOFF, 1 - n, n, e1[n]), REC(ACTIVE, n, n, e1[n]), 0)
          :: else -> retry_later(n, W_TREAD)
          fi
       :: w[n] == W_ATTACH ->
          if :: r_ok -> finish(n, 1) :: else -> retry_later(n, W_ATTACH) fi
       :: w[n] == W_RELRES ->
          if :: r_ok -> finish(n, 0) :: else -> retry_later(n, W_RELRES) fi
       /* repairs: a failed one is retried as issued; a rollback CAS that
        * won is followed by a Resume at the new epoch (R4) */
       :: w[n] == W_REPAIR ->
          if
          :: !r_ok ->  /* retried as issued */
             issue(n, 0, res_k[3*n], op_e[3*n], op_x[3*n], op_d[3*n], op_a[3*n])
          :: r_ok && op_x[3*n] != 0 && r_rec == op_d[3*n] ->
             w[n] = W_REPAIR; issue(n, 0, OP_RESUME, REP(r_rec), 0, 0, 0)
          :: else -> w[n] = NONE
          fi
       /* maintenance */
       :: w[n] == W_MREAD ->
          if
          :: r_ok && RST(r_rec) == ACTIVE && ROWN(r_rec) == n && role[n] == NONE ->
             maint[n] = W_MQUIESCE; maint_e[n] = REP(r_rec);
             step(n, W_MQUIESCE, OP_QUIESCE, maint_e[n], 0, 0, 0)
          :: else -> maint[n] = 0; w[n] = NONE
          fi
       :: w[n] == W_MQUIESCE ->
          if
          :: r_ok -> maint[n] = 1; w[n] = NONE
          :: else ->  /* may have closed the gates: resume (a repair) */
             maint[n] = 0; w[n] = W_REPAIR; issue(n, 0, OP_RESUME, maint_e[n], 0, 0, 0)
          fi
       :: w[n] == W_MRESUME ->
          if :: r_ok -> maint[n] = 0 :: else -> maint[n] = 1 fi;
          w[n] = NONE
       :: else -> skip  /* the result of a call given up on */
       fi }

  od
}

/* Peer messages to this node. */
proctype Messages(byte n) {
end_messages:
  do
  /* ---- peer messages to this node */
  :: atomic { up[n] && len(net[n]) > 0 -> net[n]?m, me, mi;
       if
       /* target side */
       :: m == OFFER || m == OFFERK ->
          if
          :: role[n] == TGT && e1[n] == me ->  /* a duplicate */
             if
             :: w[n] == W_TOFFER || w[n] == W_RESERVE || w[n] == W_ARM -> opend[n] = 1; opend_i[n] = mi
             :: karmed[n] -> send(1 - n, ACCEPTK, me, mi)
             :: else -> send(1 - n, ACCEPT, me, mi)
             fi
          :: role[n] != NONE || abortu[n] == me || me <= seen_e[n] ->
             send(1 - n, REFUSE, me, mi)
          :: else ->
             role[n] = TGT; e1[n] = me; e0[n] = me - 1; ea[n] = me + 1; committed[n] = 0;
             kp[n] = (m == OFFERK); karmed[n] = 0;
             abort_req[n] = 0; cpend[n] = 0; opend[n] = 1; opend_i[n] = mi;
             step(n, W_TOFFER, OP_READ, 0, 0, 0, 0)
          fi
       :: m == COMMIT ->
          if
          :: role[n] == TGT && e1[n] == me && started_e1[n] == me ->
             cpend[n] = 1; cpend_i[n] = mi;
             if
             :: committed[n] -> send(1 - n, COMMITTED, me, mi); cpend[n] = 0
             :: w[n] == W_CWAIT && DAEMON_MAY_COMMIT(n) -> step(n, W_TREAD, OP_READ, 0, 0, 0, 0)
             :: else -> skip
             fi
          :: role[n] == NONE && started_e1[n] == me && j_kind[n] == J_DONE ->
             if
             :: done_ok[n] -> send(1 - n, COMMITTED, me, mi)
             :: else -> send(1 - n, NOTCOMMITTED, me, mi)
             fi
          :: else -> send(1 - n, NOTCOMMITTED, me, mi)
          fi
       :: m == ABORT ->
          if
          :: role[n] == TGT && e1[n] == me && !committed[n] ->
             if
             :: w[n] == W_TOFFER ->
                abortu[n] = me;
                if :: opend[n] -> send(1 - n, REFUSE, me, opend_i[n]); opend[n] = 0 :: else -> skip fi;
                w[n] = NONE; role[n] = NONE; op_k[3*n] = NONE
             :: w[n] == W_RESERVE -> abort_req[n] = 1
             :: else ->
                if :: cpend[n] -> send(1 - n, NOTCOMMITTED, me, cpend_i[n]); cpend[n] = 0 :: else -> skip fi;
                step(n, W_RELRES, OP_RELRES, e1[n], 0, 0, 0)
             fi
          :: role[n] == NONE -> abortu[n] = me
          :: else -> skip
          fi
       /* source side: answers to this incarnation's calls only */
       :: m == ACCEPT || m == ACCEPTK ->
          if
          :: mi == inc[n] && role[n] == SRC && w[n] == W_OFFER && e1[n] == me ->
             mayq[n] = 1; karmed[n] = (m == ACCEPTK && kp[n]);
             step(n, W_PCAS, OP_CAS, 0, REC(ACTIVE, n, n, e0[n]), REC(PREPARING, n, 1 - n, e1[n]), 0)
          :: else -> skip
          fi
       :: m == REFUSE ->
          if
          :: mi == inc[n] && role[n] == SRC && w[n] == W_OFFER && e1[n] == me ->
             offer_sent[n] = 0; begin_abort(n)
          :: else -> skip
          fi
       :: m == COMMITTED ->
          if
          :: mi == inc[n] && role[n] == SRC && w[n] == W_COMMIT && e1[n] == me ->
             step(n, W_RELEASE, OP_RELEASE, e1[n], 0, 0, 0)
          :: else -> skip
          fi
       :: m == NOTCOMMITTED ->
          if
          :: mi == inc[n] && role[n] == SRC && w[n] == W_COMMIT && e1[n] == me ->
             step(n, W_OREAD, OP_READ, 0, 0, 0, 0)
          :: else -> skip
          fi
       fi }
  od
}

/* A node's kernel (sim/kernel.cc Kernel, hook/kmod): runs whatever its
 * daemon does. Armed (FastPath::Arm) for HANDOFF(1-n, n, e1), a doorbell of
 * that NIC at that epoch makes it CAS HANDOFF -> ACTIVE(n, e1) when the
 * record is exactly that HANDOFF, then attach from the rings beside the
 * record (a second step); any other doorbell is ignored (counted, a
 * kNotCommitted event). */
proctype Kernel(byte n) {
end_kernel:
  do
  :: atomic { db[n] ->
       db[n] = 0;
       /* a HandOff rings only after its HANDOFF CAS won: its doorbell never
        * finds the record still PREPARING at its epoch (it would be wasted) */
       assert(!db_h[n] || RST(CUR) != PREPARING || REP(CUR) != db_e[n]);
       if
#ifdef KERNEL_COMMIT_NO_RECORD_CHECK
       :: arm[n] && db_e[n] == arm_e[n] ->
#else
       :: arm[n] && db_e[n] == arm_e[n] && CUR == REC(HANDOFF, 1 - n, n, arm_e[n]) ->
#endif
          assert(arm_e[n] >= re);  /* epochs in the record only grow */
          rs = ACTIVE; ro = n; rt = n; re = arm_e[n];
          arm[n] = 0; kattach[n] = 1
       :: else -> kev[n] = KEV_NOTCOMMITTED
       fi }
  :: atomic { kattach[n] -> kattach[n] = 0; hk[n] = RUNNING; masked = 0; kev[n] = KEV_COMMITTED }
  /* a kernel crash (and reboot): the arm, a pending doorbell, an attach not
   * yet done and the events are gone; the record and the device stay */
  :: atomic { kcrashes > 0 && (arm[n] || db[n] || kattach[n]) ->
       kcrashes--; arm[n] = 0; db[n] = 0; kattach[n] = 0; kev[n] = 0 }
  od
}

/* Doorbells rung by hand (nh-sim-machine doorbell) or by a stale sender:
 * any node, the record's epoch or the next one. */
proctype StaleDoorbells() {
end_doorbells:
  do
  :: atomic { staledbs > 0 -> staledbs--;
       if :: tmp = S :: tmp = T fi;
       if :: ring(tmp, re, 0) :: ring(tmp, re + 1, 0) fi }
  od
}

/* The network loses, duplicates and reorders messages (within budgets). */
proctype Network() {
end_network:
  do
  :: atomic { losses > 0 && len(net[0]) > 0 -> losses--; net[0]?nm, ne, ni }
  :: atomic { losses > 0 && len(net[1]) > 0 -> losses--; net[1]?nm, ne, ni }
  :: atomic { dups > 0 && len(net[0]) > 0 && len(net[0]) < 3 ->
       dups--; net[0]?<nm, ne, ni>; net[0]!nm, ne, ni }
  :: atomic { dups > 0 && len(net[1]) > 0 && len(net[1]) < 3 ->
       dups--; net[1]?<nm, ne, ni>; net[1]!nm, ne, ni }
  :: atomic { len(net[0]) >= 2 -> net[0]?nm, ne, ni; net[0]!nm, ne, ni }  /* reorder */
  :: atomic { len(net[1]) >= 2 -> net[1]?nm, ne, ni; net[1]!nm, ne, ni }
  od
}

/* ------------------------------------------------------------ final states */

/* Settled: one owner running with the interrupts, the other detached, no
 * handover live. Documented (docs/protocol.md names the operator action):
 * a FAILED handover waiting for `nicctl recover`; the record PREPARING naming
 * a source whose journal is gone and whose hook is not running
 * (`nicctl recover --decide abort`); an owner held for maintenance
 * (`nicctl nic resume`); an owner whose hook is detached (`nicctl recover`). */
#define OWNER ro
#define SETTLED (rs == ACTIVE && hk[OWNER] == RUNNING && irq == OWNER && !masked && \
                 hk[1 - OWNER] == DETACHED && role[S] == NONE && role[T] == NONE)
#define DOCUMENTED (failed[S] || failed[T] || maint[S] == 1 || maint[T] == 1 || \
                    (rs == PREPARING && hk[ro] != RUNNING && j_kind[ro] != J_SRC) || \
                    (rs == ACTIVE && hk[ro] == DETACHED))
/* Nothing left that moves without a new fault or operator request: both
 * daemons up, no call in flight, no result or message pending, nobody
 * waiting for a timer that would still do something. */
#define IDLE_WAIT(n) (w[n] == NONE || (w[n] == W_CWAIT && known[n] == CUR && \
                      known[n] != REC(ACTIVE, 1 - n, 1 - n, e0[n])))
#define STABLE (up[S] && up[T] && op_k[0] == NONE && op_k[1] == NONE && op_k[2] == NONE && \
                op_k[3] == NONE && op_k[4] == NONE && op_k[5] == NONE && !res_ready[0] && \
                !res_ready[1] && !res_ready[3] && !res_ready[4] && len(net[S]) == 0 && \
                len(net[T]) == 0 && IDLE_WAIT(S) && IDLE_WAIT(T) && !db[S] && !db[T] && \
                !kattach[S] && !kattach[T] && kev[S] == 0 && kev[T] == 0)


#ifdef PROGRESS
/* Progress (pan -a -f: weak fairness): every run, with faults within the
 * budgets and each event source served in turn, ends settled or in a
 * documented operator state, for good. */
#define DONE (STABLE && (SETTLED || DOCUMENTED))
ltl progress { <>[] DONE }
#else
never {
  do
  :: assert(ONE_RUNNER && RUNNER_HAS_IRQ);
     assert(!STABLE || SETTLED || DOCUMENTED)
  od
}
#endif

init {
  atomic {
    hk[S] = RUNNING; hk_e[S] = 1; hk[T] = DETACHED;
    up[S] = 1; up[T] = 1; inc[S] = 1; inc[T] = 1;
    seen_e[S] = 1; seen_e[T] = 1;
    run Platform(0); run Platform(1); run Platform(2); run Platform(3); run Platform(4);
    run Platform(5); run Network(); run DaemonRestart(S); run DaemonRestart(T); run DaemonCrash(S); run DaemonCrash(T);
    run Operator(S); run Operator(T); run Timers(S); run Timers(T);
    run KernelEvents(S); run KernelEvents(T); run RecoveryResults(S); run RecoveryResults(T);
    run Results(S); run Results(T); run Messages(S); run Messages(T);
    run Kernel(S); run Kernel(T); run StaleDoorbells()
  }
}
