// The N-API layer (node-addon-api, Node-API version 8). It checks every argument's type and
// length before a kernel runs and turns every C++ failure into a JS exception (TypeError for a
// wrong type, RangeError for a wrong length or value, Error for a numerical failure): no input
// can make it read or write out of bounds. State lives in the Addon instance and in the
// Environment objects, never in statics, so every worker thread gets its own copy.
#include <napi.h>

#include <cmath>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "detmath.h"
#include "kernels.h"

namespace fedpg {
namespace {

/** Bumped when the JS <-> C++ calling convention changes; the loader rejects a stale build. */
constexpr int kAbiVersion = 3;  // 2: localRound takes one options object; 3: evaluate's optional warm start
constexpr double kMaxInt = 9007199254740991.0;  // 2^53 - 1

std::string typeName(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "an Int8Array";
      case napi_uint8_array: return "a Uint8Array";
      case napi_uint8_clamped_array: return "a Uint8ClampedArray";
      case napi_int16_array: return "an Int16Array";
      case napi_uint16_array: return "a Uint16Array";
      case napi_int32_array: return "an Int32Array";
      case napi_uint32_array: return "a Uint32Array";
      case napi_float32_array: return "a Float32Array";
      case napi_float64_array: return "a Float64Array";
      default: return "a typed array";
    }
  }
  if (v.IsArray()) return "an Array";
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "an unsupported value";
}

Napi::Value arg(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

template <class T>
Napi::TypedArrayOf<T> typedArray(Napi::Env env, const Napi::Value& v, napi_typedarray_type type, const char* typeLabel,
                                 const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, what + " must be " + typeLabel + ", got " + typeName(v));
  return v.As<Napi::TypedArrayOf<T>>();
}

Napi::Float64Array f64(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return typedArray<double>(env, v, napi_float64_array, "a Float64Array", what);
}
Napi::Uint32Array u32(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return typedArray<uint32_t>(env, v, napi_uint32_array, "a Uint32Array", what);
}
Napi::Int32Array i32(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return typedArray<int32_t>(env, v, napi_int32_array, "an Int32Array", what);
}

template <class T>
void expectLength(Napi::Env env, const Napi::TypedArrayOf<T>& a, size_t want, const std::string& what) {
  if (a.ElementLength() != want)
    throw Napi::RangeError::New(env, what + " has length " + std::to_string(a.ElementLength()) + ", expected " +
                                         std::to_string(want));
}

double number(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + " must be a number, got " + typeName(v));
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x)) throw Napi::RangeError::New(env, what + " must be finite, got " + str(x));
  return x;
}

int64_t integer(Napi::Env env, const Napi::Value& v, const std::string& what, double lo, double hi,
                const char* range) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + " must be a number, got " + typeName(v));
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= lo && x <= hi && std::floor(x) == x))  // NaN fails every comparison
    throw Napi::RangeError::New(env, what + " must be an integer in " + range + ", got " + str(x));
  return int64_t(x);
}

/** An optional entropy weight (undefined = 0). */
double entropyArg(Napi::Env env, const Napi::Value& v) {
  if (v.IsUndefined()) return 0;
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "entropy weight tau must be a number, got " + typeName(v));
  const double tau = v.As<Napi::Number>().DoubleValue();
  if (!(std::isfinite(tau) && tau >= 0))
    throw Napi::RangeError::New(env, "entropy weight tau must be a finite number >= 0, got " + str(tau));
  return tau;
}

int64_t count(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return integer(env, v, what, 1, 2147483647.0, "[1, 2^31-1]");
}

template <class T>
Span<T> span(Napi::TypedArrayOf<T> a) {
  return Span<T>(a.ElementLength() ? a.Data() : nullptr, a.ElementLength());
}
template <class T>
Span<const T> cspan(Napi::TypedArrayOf<T> a) {
  return Span<const T>(a.ElementLength() ? a.Data() : nullptr, a.ElementLength());
}

/** Runs f, mapping C++ failures to JS exceptions. */
template <class F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgumentError& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "fedpg native backend: out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Async jobs: inputs are copied on the JS thread, the kernel runs on the libuv pool with its own
// Workspace and a shared_ptr to the (immutable) model, outputs are copied back on the JS thread.

class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<double(const Model&, Workspace&)>;

  Job(Napi::Env env, std::shared_ptr<const Model> model)
      : Napi::AsyncWorker(env, "fedpg:native"), deferred_(Napi::Promise::Deferred::New(env)), model_(std::move(model)) {}

  std::vector<double>& input(const Napi::Float64Array& a) {
    ins_.emplace_back(a.Data(), a.Data() + a.ElementLength());
    return ins_.back();
  }
  /** An output (copyIn: also an input, e.g. theta of a local round). */
  std::vector<double>& output(const Napi::Float64Array& a, bool copyIn) {
    outs_.push_back(Out64{Napi::Persistent(static_cast<Napi::Object>(a)), {}});
    Out64& o = outs_.back();
    if (copyIn) o.data.assign(a.Data(), a.Data() + a.ElementLength());
    else o.data.assign(a.ElementLength(), 0.0);
    return o.data;
  }
  std::vector<uint32_t>& stream(const Napi::Uint32Array& a) {
    rngs_.push_back(OutU32{Napi::Persistent(static_cast<Napi::Object>(a)), {}});
    OutU32& o = rngs_.back();
    o.data.assign(a.Data(), a.Data() + a.ElementLength());
    return o.data;
  }
  void setWork(Work w, bool returnsNumber) {
    work_ = std::move(w);
    returnsNumber_ = returnsNumber;
  }
  /** Queues the job; from then on it deletes itself after OnOK / OnError. */
  static Napi::Promise start(std::unique_ptr<Job> job) {
    Napi::Promise p = job->deferred_.Promise();
    job.release()->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      Workspace ws;
      result_ = work_(*model_, ws);
    } catch (const std::bad_alloc&) {
      SetError("fedpg native backend: out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // All or nothing: check every output before writing any.
    bool ok = true;
    for (Out64& o : outs_) ok = ok && intact(o.ref, o.data.size(), napi_float64_array);
    for (OutU32& o : rngs_) ok = ok && intact(o.ref, o.data.size(), napi_uint32_array);
    if (!ok) {
      deferred_.Reject(Napi::Error::New(env, "an output array was detached or resized while the native job ran").Value());
      return;
    }
    for (Out64& o : outs_) copyOut(o.ref, o.data);
    for (OutU32& o : rngs_) copyOut(o.ref, o.data);
    deferred_.Resolve(returnsNumber_ ? Napi::Value(Napi::Number::New(env, result_)) : env.Undefined());
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  struct Out64 {
    Napi::ObjectReference ref;
    std::vector<double> data;
  };
  struct OutU32 {
    Napi::ObjectReference ref;
    std::vector<uint32_t> data;
  };

  static bool intact(Napi::ObjectReference& ref, size_t n, napi_typedarray_type type) {
    const Napi::Value v = ref.Value();
    return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type &&
           v.As<Napi::TypedArray>().ElementLength() == n;
  }
  template <class T>
  static void copyOut(Napi::ObjectReference& ref, const std::vector<T>& data) {
    if (!data.empty()) std::memcpy(ref.Value().As<Napi::TypedArrayOf<T>>().Data(), data.data(), data.size() * sizeof(T));
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<const Model> model_;
  Work work_;
  bool returnsNumber_ = false;
  double result_ = 0;
  std::deque<std::vector<double>> ins_;
  std::deque<Out64> outs_;
  std::deque<OutU32> rngs_;
};

// ---------------------------------------------------------------------------------------------

class EnvWrap : public Napi::ObjectWrap<EnvWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEnvironment",
                       {
                           InstanceAccessor("states", &EnvWrap::States, nullptr, napi_enumerable),
                           InstanceAccessor("actions", &EnvWrap::Actions, nullptr, napi_enumerable),
                           InstanceAccessor("simd", &EnvWrap::SimdLevel, nullptr, napi_enumerable),
                           InstanceAccessor("disposed", &EnvWrap::Disposed, nullptr, napi_enumerable),
                           InstanceMethod("evaluate", &EnvWrap::Evaluate),
                           InstanceMethod("truncated", &EnvWrap::Truncated),
                           InstanceMethod("optimal", &EnvWrap::Optimal),
                           InstanceMethod("estimateGradient", &EnvWrap::EstimateGradient),
                           InstanceMethod("estimateRegularized", &EnvWrap::EstimateRegularized),
                           InstanceMethod("estimateSvrpg", &EnvWrap::EstimateSvrpg),
                           InstanceMethod("localRound", &EnvWrap::LocalRound),
                           InstanceMethod("evaluateAsync", &EnvWrap::EvaluateAsync),
                           InstanceMethod("truncatedAsync", &EnvWrap::TruncatedAsync),
                           InstanceMethod("optimalAsync", &EnvWrap::OptimalAsync),
                           InstanceMethod("estimateGradientAsync", &EnvWrap::EstimateGradientAsync),
                           InstanceMethod("estimateRegularizedAsync", &EnvWrap::EstimateRegularizedAsync),
                           InstanceMethod("localRoundAsync", &EnvWrap::LocalRoundAsync),
                           InstanceMethod("dispose", &EnvWrap::Dispose),
                       });
  }

  explicit EnvWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EnvWrap>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) throw Napi::TypeError::New(env, "NativeEnvironment must be called with new");
    const Napi::Value specV = arg(info, 0);
    if (!specV.IsObject()) throw Napi::TypeError::New(env, "the environment spec must be an object, got " + typeName(specV));
    const Napi::Object spec = specV.As<Napi::Object>();
    const int64_t S = integer(env, spec.Get("states"), "spec.states", 1, 2147483647.0, "[1, 2^31-1]");
    const int64_t A = integer(env, spec.Get("actions"), "spec.actions", 1, 2147483647.0, "[1, 2^31-1]");
    const double gamma = number(env, spec.Get("gamma"), "spec.gamma");
    const Napi::Float64Array initial = f64(env, spec.Get("initial"), "spec.initial");
    const Napi::Value trV = spec.Get("transitions");
    if (!trV.IsObject()) throw Napi::TypeError::New(env, "spec.transitions must be an object, got " + typeName(trV));
    const Napi::Object tr = trV.As<Napi::Object>();
    const Napi::Value kindV = tr.Get("kind");
    const std::string kind = kindV.IsString() ? kindV.As<Napi::String>().Utf8Value() : "";

    ModelOptions opt;
    opt.simd = bestSimd();
    const Napi::Value optV = arg(info, 1);
    if (!optV.IsUndefined() && !optV.IsNull()) {
      if (!optV.IsObject()) throw Napi::TypeError::New(env, "options must be an object, got " + typeName(optV));
      const Napi::Object o = optV.As<Napi::Object>();
      const Napi::Value simdV = o.Get("simd");
      if (!simdV.IsUndefined()) {
        if (!simdV.IsString()) throw Napi::TypeError::New(env, "options.simd must be a string, got " + typeName(simdV));
        const std::string name = simdV.As<Napi::String>().Utf8Value();
        if (!parseSimd(name, &opt.simd))
          throw Napi::RangeError::New(env, "options.simd must be auto, generic, avx2 or avx512, got '" + name + "'");
        if (!simdSupported(opt.simd))
          throw Napi::RangeError::New(env, "options.simd '" + name + "' is not supported by this CPU (best: " +
                                               simdName(bestSimd()) + ")");
      }
      const Napi::Value lanesV = o.Get("lanes");
      if (!lanesV.IsUndefined()) opt.lanes = int(integer(env, lanesV, "options.lanes", 0, 64, "[0, 64]"));
    }

    model_ = guarded(env, [&]() -> std::shared_ptr<const Model> {
      if (kind == "dense") {
        const Napi::Float64Array p = f64(env, tr.Get("p"), "spec.transitions.p");
        return Model::dense(S, A, gamma, initial.Data(), initial.ElementLength(), p.Data(), p.ElementLength(), opt);
      }
      if (kind == "sparse") {
        const Napi::Int32Array rs = i32(env, tr.Get("rowStart"), "spec.transitions.rowStart");
        const Napi::Int32Array nx = i32(env, tr.Get("next"), "spec.transitions.next");
        const Napi::Float64Array pr = f64(env, tr.Get("prob"), "spec.transitions.prob");
        if (rs.ElementLength() == 0) throw ArgumentError("spec.transitions.rowStart is empty");
        return Model::sparse(S, A, gamma, initial.Data(), initial.ElementLength(), rs.Data(), rs.ElementLength(),
                             nx.Data(), nx.ElementLength(), pr.Data(), pr.ElementLength(), opt);
      }
      throw Napi::TypeError::New(env, "spec.transitions.kind must be 'dense' or 'sparse', got " + typeName(kindV) +
                                          (kindV.IsString() ? " '" + kind + "'" : ""));
    });
    ws_ = std::make_unique<Workspace>();
  }

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Workspace> ws_;

  const Model& live(Napi::Env env) const {
    if (!model_) throw Napi::Error::New(env, "this native environment has been disposed");
    return *model_;
  }
  size_t SA() const { return size_t(model_->SA()); }

  Napi::Value States(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_ ? model_->S : 0); }
  Napi::Value Actions(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_ ? model_->A : 0); }
  Napi::Value SimdLevel(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), model_ ? simdName(model_->options.simd) : "none");
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();  // running async jobs keep their own reference
    ws_.reset();
    return info.Env().Undefined();
  }

  // ---- argument bundles (checked once, shared by the sync and async variants) ----

  struct EvalArgs {
    Napi::Float64Array theta, rewards, J, V, Q, grad, occ;
    double tau = 0;
    // The optional warm start (arguments 8 and 9: both Float64Arrays, or both undefined/null).
    Napi::Float64Array warmV, warmOcc;
    bool warm = false;
  };
  EvalArgs evalArgs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Model& m = live(env);
    EvalArgs a;
    a.theta = f64(env, arg(info, 0), "theta");
    a.rewards = f64(env, arg(info, 1), "rewards");
    a.J = f64(env, arg(info, 2), "J output");
    a.V = f64(env, arg(info, 3), "V output");
    a.Q = f64(env, arg(info, 4), "Q output");
    a.grad = f64(env, arg(info, 5), "grad output");
    a.occ = f64(env, arg(info, 6), "occupancy output");
    a.tau = entropyArg(env, arg(info, 7));
    expectLength(env, a.theta, SA(), "theta");
    if (a.rewards.ElementLength() == 0 || a.rewards.ElementLength() % SA() != 0)
      throw Napi::RangeError::New(env, "rewards has length " + std::to_string(a.rewards.ElementLength()) +
                                           ", expected a positive multiple of S*A = " + std::to_string(SA()));
    const size_t n = a.rewards.ElementLength() / SA();
    expectLength(env, a.J, n, "J output");
    expectLength(env, a.V, n * m.S, "V output");
    expectLength(env, a.Q, n * SA(), "Q output");
    expectLength(env, a.grad, n * SA(), "grad output");
    expectLength(env, a.occ, size_t(m.S), "occupancy output");
    const Napi::Value wv = arg(info, 8), wo = arg(info, 9);
    if (!(wv.IsUndefined() || wv.IsNull()) || !(wo.IsUndefined() || wo.IsNull())) {
      a.warm = true;
      a.warmV = f64(env, wv, "warm.V");
      a.warmOcc = f64(env, wo, "warm.occupancy");
      expectLength(env, a.warmV, n * m.S, "warm.V");
      expectLength(env, a.warmOcc, size_t(m.S), "warm.occupancy");
    }
    guarded(env, [&] { checkThetaValues(m, cspan(a.theta)); });
    return a;
  }

  struct TruncArgs {
    Napi::Float64Array theta, rewards, JK, gradK;
    int64_t K;
  };
  TruncArgs truncArgs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Model& m = live(env);
    TruncArgs a;
    a.theta = f64(env, arg(info, 0), "theta");
    a.rewards = f64(env, arg(info, 1), "rewards");
    a.K = integer(env, arg(info, 2), "horizon", 0, 2147483647.0, "[0, 2^31-1]");
    a.JK = f64(env, arg(info, 3), "JK output");
    a.gradK = f64(env, arg(info, 4), "gradK output");
    expectLength(env, a.theta, SA(), "theta");
    if (a.rewards.ElementLength() == 0 || a.rewards.ElementLength() % SA() != 0)
      throw Napi::RangeError::New(env, "rewards has length " + std::to_string(a.rewards.ElementLength()) +
                                           ", expected a positive multiple of S*A = " + std::to_string(SA()));
    const size_t n = a.rewards.ElementLength() / SA();
    expectLength(env, a.JK, n, "JK output");
    expectLength(env, a.gradK, n * SA(), "gradK output");
    guarded(env, [&] { checkThetaValues(m, cspan(a.theta)); });
    return a;
  }

  struct OptArgs {
    Napi::Float64Array reward, vOut;
  };
  OptArgs optArgs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Model& m = live(env);
    OptArgs a;
    a.reward = f64(env, arg(info, 0), "reward");
    a.vOut = f64(env, arg(info, 1), "V output");
    expectLength(env, a.reward, SA(), "reward");
    expectLength(env, a.vOut, size_t(m.S), "V output");
    return a;
  }

  struct EstArgs {
    Napi::Float64Array theta, reward, out;
    Napi::Uint32Array rng;
    int64_t K, M;
    bool regularized = false;
    double tau = 0;
  };
  /** (theta, reward, K, M, rng, out), or with regularized (theta, reward, tau, K, M, rng, out). */
  EstArgs estArgs(const Napi::CallbackInfo& info, bool regularized) {
    Napi::Env env = info.Env();
    const Model& m = live(env);
    EstArgs a;
    const size_t o = regularized ? 1 : 0;
    a.regularized = regularized;
    a.theta = f64(env, arg(info, 0), "theta");
    a.reward = f64(env, arg(info, 1), "reward");
    if (regularized) {
      const Napi::Value t = arg(info, 2);
      if (t.IsUndefined()) throw Napi::TypeError::New(env, "entropy weight tau must be a number, got undefined");
      a.tau = entropyArg(env, t);
    }
    a.K = count(env, arg(info, 2 + o), "horizon");
    a.M = count(env, arg(info, 3 + o), "batch");
    a.rng = u32(env, arg(info, 4 + o), "rng");
    a.out = f64(env, arg(info, 5 + o), "gradient output");
    expectLength(env, a.theta, SA(), "theta");
    expectLength(env, a.reward, SA(), "reward");
    expectLength(env, a.rng, 4, "rng");
    expectLength(env, a.out, SA(), "gradient output");
    guarded(env, [&] { checkThetaValues(m, cspan(a.theta)); });
    return a;
  }

  struct RoundArgs {
    Napi::Float64Array theta, reward, correction;
    bool hasCorrection = false;
    double eta = 0;
    int64_t steps = 0;
    bool sampled = false;
    int64_t K = 0, M = 0;
    Napi::Uint32Array rng;
    double tau = 0;
    bool hasSvrpg = false;
    Napi::Float64Array thetaPrev, u;
    double beta = 0, clip = 0;
  };
  /**
   * localRound's one argument: an options object read by name (LocalRoundArgs in
   * src/backends/types.ts): { theta, reward, correction (Float64Array or null), eta, steps,
   * gradient ('exact' | 'sampled'), horizon, batch, rng (sampled only), entropy (optional),
   * svrpg (optional: { thetaPrev, u, beta, clip }, FedSVRPG-M) }.
   * A missing or wrongly typed field is a TypeError naming it (options.<field>).
   */
  RoundArgs roundArgs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Model& m = live(env);
    const Napi::Value ov = arg(info, 0);
    if (!ov.IsObject() || ov.IsTypedArray() || ov.IsArray() || ov.IsFunction())
      throw Napi::TypeError::New(env, "localRound takes one options object, got " + typeName(ov));
    const Napi::Object o = ov.As<Napi::Object>();
    RoundArgs a;
    a.theta = f64(env, o.Get("theta"), "options.theta");
    a.reward = f64(env, o.Get("reward"), "options.reward");
    const Napi::Value c = o.Get("correction");
    if (!c.IsNull() && !c.IsUndefined()) {
      a.correction = f64(env, c, "options.correction");
      a.hasCorrection = true;
      expectLength(env, a.correction, SA(), "options.correction");
    }
    a.eta = number(env, o.Get("eta"), "options.eta");
    a.steps = integer(env, o.Get("steps"), "options.steps", 0, kMaxInt, "[0, 2^53-1]");
    const Napi::Value gv = o.Get("gradient");
    const std::string gradient = gv.IsString() ? gv.As<Napi::String>().Utf8Value() : "";
    if (gradient != "exact" && gradient != "sampled")
      throw Napi::TypeError::New(env, "options.gradient must be 'exact' or 'sampled', got " + typeName(gv) +
                                          (gv.IsString() ? " '" + gradient + "'" : ""));
    a.sampled = gradient == "sampled";
    expectLength(env, a.theta, SA(), "options.theta");
    expectLength(env, a.reward, SA(), "options.reward");
    if (a.sampled) {
      a.K = count(env, o.Get("horizon"), "options.horizon");
      a.M = count(env, o.Get("batch"), "options.batch");
      a.rng = u32(env, o.Get("rng"), "options.rng");
      expectLength(env, a.rng, 4, "options.rng");
    }
    const Napi::Value tv = o.Get("entropy");
    if (!tv.IsUndefined()) {
      if (!tv.IsNumber()) throw Napi::TypeError::New(env, "options.entropy must be a number, got " + typeName(tv));
      a.tau = entropyArg(env, tv);
    }
    const Napi::Value sv = o.Get("svrpg");
    if (!sv.IsUndefined() && !sv.IsNull()) {
      if (!sv.IsObject() || sv.IsTypedArray() || sv.IsArray())
        throw Napi::TypeError::New(env, "options.svrpg must be an object, got " + typeName(sv));
      const Napi::Object so = sv.As<Napi::Object>();
      a.hasSvrpg = true;
      a.thetaPrev = f64(env, so.Get("thetaPrev"), "options.svrpg.thetaPrev");
      a.u = f64(env, so.Get("u"), "options.svrpg.u");
      expectLength(env, a.thetaPrev, SA(), "options.svrpg.thetaPrev");
      expectLength(env, a.u, SA(), "options.svrpg.u");
      a.beta = number(env, so.Get("beta"), "options.svrpg.beta");
      a.clip = number(env, so.Get("clip"), "options.svrpg.clip");
    }
    guarded(env, [&] { checkThetaValues(m, cspan(a.theta)); });
    return a;
  }

  struct SvrpgEstArgs {
    Napi::Float64Array theta, thetaPrev, reward, outCur, outPrev;
    Napi::Uint32Array rng;
    int64_t K = 0, M = 0;
    double clip = 0;
  };
  /** (theta, thetaPrev, reward, K, M, clip, rng, outCur, outPrevWeighted), as Environment.estimateSvrpg. */
  SvrpgEstArgs svrpgEstArgs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Model& m = live(env);
    SvrpgEstArgs a;
    a.theta = f64(env, arg(info, 0), "theta");
    a.thetaPrev = f64(env, arg(info, 1), "thetaPrev");
    a.reward = f64(env, arg(info, 2), "reward");
    a.K = count(env, arg(info, 3), "horizon");
    a.M = count(env, arg(info, 4), "batch");
    a.clip = number(env, arg(info, 5), "clip");
    a.rng = u32(env, arg(info, 6), "rng");
    a.outCur = f64(env, arg(info, 7), "gradient output");
    a.outPrev = f64(env, arg(info, 8), "gradient output (weighted)");
    expectLength(env, a.theta, SA(), "theta");
    expectLength(env, a.thetaPrev, SA(), "thetaPrev");
    expectLength(env, a.reward, SA(), "reward");
    expectLength(env, a.rng, 4, "rng");
    expectLength(env, a.outCur, SA(), "gradient output");
    expectLength(env, a.outPrev, SA(), "gradient output (weighted)");
    guarded(env, [&] { checkThetaValues(m, cspan(a.theta)); });
    return a;
  }

  Napi::Value EstimateSvrpg(const Napi::CallbackInfo& info) {
    SvrpgEstArgs a = svrpgEstArgs(info);
    guarded(info.Env(), [&] {
      estimateSvrpg(*model_, *ws_, cspan(a.theta), cspan(a.thetaPrev), cspan(a.reward), a.K, a.M, a.clip, span(a.rng),
                    span(a.outCur), span(a.outPrev));
    });
    return info.Env().Undefined();
  }

  // ---- sync ----

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    EvalArgs a = evalArgs(info);
    guarded(info.Env(), [&] {
      evaluate(*model_, *ws_, cspan(a.theta), cspan(a.rewards), span(a.J), span(a.V), span(a.Q), span(a.grad),
               span(a.occ), a.tau, a.warm ? span(a.warmV) : Out(), a.warm ? span(a.warmOcc) : Out());
    });
    return info.Env().Undefined();
  }

  Napi::Value Truncated(const Napi::CallbackInfo& info) {
    TruncArgs a = truncArgs(info);
    guarded(info.Env(), [&] { truncated(*model_, *ws_, cspan(a.theta), cspan(a.rewards), a.K, span(a.JK), span(a.gradK)); });
    return info.Env().Undefined();
  }

  Napi::Value Optimal(const Napi::CallbackInfo& info) {
    OptArgs a = optArgs(info);
    const double J = guarded(info.Env(), [&] { return optimal(*model_, *ws_, cspan(a.reward), span(a.vOut)); });
    return Napi::Number::New(info.Env(), J);
  }

  Napi::Value EstimateGradient(const Napi::CallbackInfo& info) { return estimate(info, false); }
  Napi::Value EstimateRegularized(const Napi::CallbackInfo& info) { return estimate(info, true); }
  Napi::Value estimate(const Napi::CallbackInfo& info, bool regularized) {
    EstArgs a = estArgs(info, regularized);
    guarded(info.Env(), [&] {
      if (a.regularized)
        estimateRegularized(*model_, *ws_, cspan(a.theta), cspan(a.reward), a.tau, a.K, a.M, span(a.rng), span(a.out));
      else
        estimateGradient(*model_, *ws_, cspan(a.theta), cspan(a.reward), a.K, a.M, span(a.rng), span(a.out));
    });
    return info.Env().Undefined();
  }

  Napi::Value LocalRound(const Napi::CallbackInfo& info) {
    RoundArgs a = roundArgs(info);
    guarded(info.Env(), [&] {
      SvrpgArgs sv;
      if (a.hasSvrpg) sv = SvrpgArgs{cspan(a.thetaPrev), cspan(a.u), a.beta, a.clip};
      localRound(*model_, *ws_, span(a.theta), cspan(a.reward), a.hasCorrection ? cspan(a.correction) : In(), a.eta,
                 a.steps, a.sampled, a.K, a.M, a.sampled ? span(a.rng) : Span<uint32_t>(), a.tau,
                 a.hasSvrpg ? &sv : nullptr);
    });
    return info.Env().Undefined();
  }

  // ---- async: the same checks, then a Job ----

  Napi::Value EvaluateAsync(const Napi::CallbackInfo& info) {
    EvalArgs a = evalArgs(info);
    auto job = std::make_unique<Job>(info.Env(), model_);
    const std::vector<double>* theta = &job->input(a.theta);
    const std::vector<double>* rewards = &job->input(a.rewards);
    std::vector<double>* J = &job->output(a.J, false);
    std::vector<double>* V = &job->output(a.V, false);
    std::vector<double>* Q = &job->output(a.Q, false);
    std::vector<double>* grad = &job->output(a.grad, false);
    std::vector<double>* occ = &job->output(a.occ, false);
    std::vector<double>* warmV = a.warm ? &job->output(a.warmV, true) : nullptr;
    std::vector<double>* warmOcc = a.warm ? &job->output(a.warmOcc, true) : nullptr;
    const double tau = a.tau;
    job->setWork(
        [=](const Model& m, Workspace& w) {
          evaluate(m, w, in(theta), in(rewards), out(J), out(V), out(Q), out(grad), out(occ), tau,
                   warmV ? out(warmV) : Out(), warmOcc ? out(warmOcc) : Out());
          return 0.0;
        },
        false);
    return Job::start(std::move(job));
  }

  Napi::Value TruncatedAsync(const Napi::CallbackInfo& info) {
    TruncArgs a = truncArgs(info);
    auto job = std::make_unique<Job>(info.Env(), model_);
    const std::vector<double>* theta = &job->input(a.theta);
    const std::vector<double>* rewards = &job->input(a.rewards);
    std::vector<double>* JK = &job->output(a.JK, false);
    std::vector<double>* gradK = &job->output(a.gradK, false);
    const int64_t K = a.K;
    job->setWork(
        [=](const Model& m, Workspace& w) {
          truncated(m, w, in(theta), in(rewards), K, out(JK), out(gradK));
          return 0.0;
        },
        false);
    return Job::start(std::move(job));
  }

  Napi::Value OptimalAsync(const Napi::CallbackInfo& info) {
    OptArgs a = optArgs(info);
    auto job = std::make_unique<Job>(info.Env(), model_);
    const std::vector<double>* reward = &job->input(a.reward);
    std::vector<double>* v = &job->output(a.vOut, false);
    job->setWork([=](const Model& m, Workspace& w) { return optimal(m, w, in(reward), out(v)); }, true);
    return Job::start(std::move(job));
  }

  Napi::Value EstimateGradientAsync(const Napi::CallbackInfo& info) { return estimateAsync(info, false); }
  Napi::Value EstimateRegularizedAsync(const Napi::CallbackInfo& info) { return estimateAsync(info, true); }
  Napi::Value estimateAsync(const Napi::CallbackInfo& info, bool regularized) {
    EstArgs a = estArgs(info, regularized);
    auto job = std::make_unique<Job>(info.Env(), model_);
    const std::vector<double>* theta = &job->input(a.theta);
    const std::vector<double>* reward = &job->input(a.reward);
    std::vector<uint32_t>* rng = &job->stream(a.rng);
    std::vector<double>* g = &job->output(a.out, false);
    const int64_t K = a.K, M = a.M;
    const double tau = a.tau;
    job->setWork(
        [=](const Model& m, Workspace& w) {
          const Span<uint32_t> r(rng->data(), rng->size());
          if (regularized) estimateRegularized(m, w, in(theta), in(reward), tau, K, M, r, out(g));
          else estimateGradient(m, w, in(theta), in(reward), K, M, r, out(g));
          return 0.0;
        },
        false);
    return Job::start(std::move(job));
  }

  Napi::Value LocalRoundAsync(const Napi::CallbackInfo& info) {
    RoundArgs a = roundArgs(info);
    auto job = std::make_unique<Job>(info.Env(), model_);
    std::vector<double>* theta = &job->output(a.theta, true);
    const std::vector<double>* reward = &job->input(a.reward);
    const std::vector<double>* corr = a.hasCorrection ? &job->input(a.correction) : nullptr;
    std::vector<uint32_t>* rng = a.sampled ? &job->stream(a.rng) : nullptr;
    const double eta = a.eta;
    const int64_t steps = a.steps, K = a.K, M = a.M;
    const bool sampled = a.sampled;
    const double tau = a.tau;
    const std::vector<double>* thetaPrev = a.hasSvrpg ? &job->input(a.thetaPrev) : nullptr;
    const std::vector<double>* u = a.hasSvrpg ? &job->input(a.u) : nullptr;
    const double beta = a.beta, clip = a.clip;
    job->setWork(
        [=](const Model& m, Workspace& w) {
          SvrpgArgs sv;
          if (thetaPrev) sv = SvrpgArgs{in(thetaPrev), in(u), beta, clip};
          localRound(m, w, out(theta), in(reward), corr ? in(corr) : In(), eta, steps, sampled, K, M,
                     rng ? Span<uint32_t>(rng->data(), rng->size()) : Span<uint32_t>(), tau, thetaPrev ? &sv : nullptr);
          return 0.0;
        },
        false);
    return Job::start(std::move(job));
  }

  static In in(const std::vector<double>* v) { return In(v->data(), v->size()); }
  static Out out(std::vector<double>* v) { return Out(v->data(), v->size()); }
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceValue("Environment", EnvWrap::Define(env), napi_enumerable),
                             InstanceValue("abiVersion", Napi::Number::New(env, kAbiVersion), napi_enumerable),
                             InstanceMethod("info", &Addon::Info, napi_enumerable),
                             InstanceMethod("mapMath", &Addon::MapMath, napi_enumerable),
                         });
  }

 private:
  /**
   * mapMath(name, x, out): out[i] = f(x[i]) with f one of exp, log, cos (ours, native/src/detmath.h)
   * or std.exp, std.log, std.cos (this machine's libm). For the cross-backend tests and the bench.
   */
  Napi::Value MapMath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Napi::Value nameV = arg(info, 0);
    if (!nameV.IsString()) throw Napi::TypeError::New(env, "mapMath name must be a string, got " + typeName(nameV));
    const std::string name = nameV.As<Napi::String>().Utf8Value();
    Napi::Float64Array x = f64(env, arg(info, 1), "x");
    Napi::Float64Array out = f64(env, arg(info, 2), "out");
    expectLength(env, out, x.ElementLength(), "out");
    const size_t n = x.ElementLength();
    const double* in = n ? x.Data() : nullptr;
    double* o = n ? out.Data() : nullptr;
    if (name == "exp") for (size_t i = 0; i < n; i++) o[i] = det::exp(in[i]);
    else if (name == "log") for (size_t i = 0; i < n; i++) o[i] = det::log(in[i]);
    else if (name == "cos") for (size_t i = 0; i < n; i++) o[i] = det::cos(in[i]);
    else if (name == "std.exp") for (size_t i = 0; i < n; i++) o[i] = std::exp(in[i]);
    else if (name == "std.log") for (size_t i = 0; i < n; i++) o[i] = std::log(in[i]);
    else if (name == "std.cos") for (size_t i = 0; i < n; i++) o[i] = std::cos(in[i]);
    else throw Napi::RangeError::New(env, "mapMath name must be exp, log, cos, std.exp, std.log or std.cos, got '" + name + "'");
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("abiVersion", kAbiVersion);
    o.Set("napiVersion", NAPI_VERSION);
    o.Set("simd", simdName(bestSimd()));
    Napi::Array supported = Napi::Array::New(env);
    uint32_t k = 0;
    for (Simd s : {Simd::Generic, Simd::Avx2, Simd::Avx512})
      if (simdSupported(s)) supported.Set(k++, simdName(s));
    o.Set("simdSupported", supported);
    o.Set("denseLimit", kDenseLimit);
    o.Set("luPanel", DenseLU::kPanel);
    return o;
  }
};

}  // namespace
}  // namespace fedpg

using FedpgAddon = fedpg::Addon;
NODE_API_ADDON(FedpgAddon)
