// The contract between the host (src/wasm.ts) and the kernels (assembly/): method, advantage and
// scope codes, the order of the per-criterion statistics, and the layout of the kernels' fixed
// memory region (a head of named f64 slots, then vectors of KP lanes). Written in the subset that
// tsc and asc both compile (enums of integer constants only), so both sides
// are built from this one file. Adding a method, a setting or a statistic is one member here,
// before `End`; test/unit/abi.test.ts checks that the built wasm agrees.

/** Method codes. The public name is the member name in kebab case (WeightedMean = "weighted-mean"). */
export enum MethodCode {
  Focal, WeightedMean, Gdpo,
  // The aggregators (assembly/aggregators.ts, src/aggregators.ts): WeightedSum to MoGrpo.
  WeightedSum, Min, PowerMean, SoftMin, Cvar, PointsRatio, AllOrNothing, Gated, Hierarchical, Pow3r, Dvao, MoGrpo,
  SaMrpo,
  End,
}

/** Advantage codes; names in kebab case as for methods. */
export enum AdvantageCode { None, Grpo, DrGrpo, Rloo, End }

export enum ScopeCode { Group, Stream, End }

/** Per-criterion statistics, K f64 each, field-major; the names are the member names in lower case. */
export enum Stat {
  /** Sum of the present values over valid rows. */ Sum,
  /** Sum of their squares. */ Sq,
  /** How many there were. */ Count,
  /** Groups where the criterion was constant. */ Constant,
  /** Groups where it was present. */ Present,
  /** Sum of its weight over those groups (stream scope: the batch's weight). */ Weight,
  /** Sum of its saturation over those groups (stream scope: the estimate). */ Saturation,
  End,
}

/** Engine settings: f64 slots of the head, written by the host before configure(). Flags are 0 or 1. */
export enum Setting {
  Method, Scope, Advantage, Gamma, Eps, Tau,
  /** 1 when minWeight or maxWeight is given. */ Bounded,
  MinWeight, MaxWeight, Mix, Decay, AdvEps,
  /** constant "drop". */ DropConstant,
  // Aggregator options (src/aggregators.ts)
  Power, Temperature, Alpha,
  /** Pass threshold minus its slack. */ PassAt,
  /** F-GRPO exponent; < 0 = off. */ FGrpo,
  /** pow3r's weight floor and clip. */ WeightFloor, WeightClip,
  /** outOfScale "error": score() refuses a call with a score out of scale. */ RefuseOutOfScale,
  End,
}

/** One score() call: f64 slots of the head the host writes before score(); buffers are byte offsets. */
export enum Call {
  Rows, Groups,
  /** Inputs: rows x K f32 scores, rows u8 valid flags (0 = none), group sizes (i32), groups x K f32 weights (0 = none). */
  Scores, Valid, Sizes, InstanceWeights,
  /** Outputs: rows f32 each, then groups x K f32 (stream scope: K). */
  Rewards, Direct, Advantages, Weights, Saturation,
  /** Scratch: NormalizedRows rows of KP f32 lanes; four f64 per row of the widest group (the tilt; pass 1's partial sums). */
  Normalized, Tilt, NormalizedRows,
  /** Scratch for the widest group: its rows' normalized scores in f64 (KP lanes), their direct rewards in f64. */
  NormalizedWide, DirectWide,
  End,
}

/** Results of a call besides the buffers: f64 slots of the head. */
export enum Summary { ZeroStdGroups, ActiveGroups, End }

/** The head of the fixed region, in f64 slots: settings, call, summary; padded to 16 bytes. */
export enum Head {
  SettingsAt = 0,
  CallAt = SettingsAt + Setting.End,
  SummaryAt = CallAt + Call.End,
  End = (SummaryAt + Summary.End + 1) & ~1,
}

/**
 * The vectors after the head, in units of KP f32 lanes (KP = K rounded up to 4; a unit is KP * 4
 * bytes, a multiple of 16): an f32 vector takes one unit, an f64 vector two.
 */
export enum Region {
  // Rubric, written by the host: the affine map u = (x - lo) * inv (penalties flipped), base
  // weights, and 1-or-0 flags per lane: guarded (fixed), penalty, required; the raw scale ends.
  Lo, Inv, Base, Fixed, Penalty, Required, ScaleLo, ScaleHi,
  // Stream state (host-readable and -writable): saturation estimates (f64: the precision contract
  // holds across calls), seen flags (f32, 1 or 0).
  Sbar, Seen = Sbar + 2,
  /** scoreOne's input row, written by the host. */
  Row,
  // Kernel scratch (f32).
  StreamWeights, StreamWeightsUsed, RowNormalized, Saturation, FocalWeights,
  GroupBase, GroupSum, GroupSq, GroupCount, GroupMin, GroupMax,
  /** A call's sums of group saturations and their counts (f64). */
  SatSum, SatCount = SatSum + 2,
  SaMrpoFactor = SatCount + 2, AggregatorRow, AggregatorWeights,
  /** score()'s out-of-scale counts (i32 lanes, host-readable): scores outside the scale, present scores. */
  OutOfScale, ScalePresent,
  /** Per-criterion statistics (host-readable): Stat.End f64 vectors, field-major. */
  Stats,
  // Kernel scratch (f64).
  Sort = Stats + 2 * Stat.End, CriterionSum = Sort + 4, CriterionCount = CriterionSum + 2,
  ZMean = CriterionCount + 2, ZScale = ZMean + 2,
  // The float64 path of the focal method (spec "Precision contract"): the rubric's affine map and
  // base weights as the host has them (written by the host), then kernel scratch.
  LoWide = ZScale + 2, InvWide = LoWide + 2, BaseWide = InvWide + 2,
  GroupBaseWide = BaseWide + 2, RowWide = GroupBaseWide + 2, AccWide = RowWide + 2, MassWide = AccWide + 2,
  SaturationWide = MassWide + 2, CoefficientsWide = SaturationWide + 2, FocalWide = CoefficientsWide + 2,
  MaskWide = FocalWide + 2, KeptWide = MaskWide + 2,
  /** Kernel scratch (i32): how many of a call's fully valid groups have each criterion constant. */
  DenseConstant = KeptWide + 2,
  End,
}

/** What the kernel's abi(query) export answers, so a test can compare the built wasm with this file. */
export enum AbiQuery { Methods, Advantages, Scopes, Stats, Settings, Calls, Summaries, HeadEnd, RegionEnd, End }
