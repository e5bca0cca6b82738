#include "pipeline/flow_matching.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace ditserve {
namespace {

constexpr double kTrainTimesteps = 1000.0;

// log(alpha / sigma) with alpha = 1 - sigma: UniPC's lambda; +inf at sigma 0.
double lambda_of(double sigma) {
  return sigma == 0.0 ? std::numeric_limits<double>::infinity()
                      : std::log(1.0 - sigma) - std::log(sigma);
}

// sum_k c_k * t_k on be (f32 tensors of one shape).
Tensor combine(Backend& be, const std::vector<std::pair<double, Tensor>>& terms) {
  const std::unique_ptr<Backend> host = make_backend(Device::cpu());
  const Tensor c0 =
      transfer(*host, Tensor::from_vector({static_cast<float>(terms.front().first)}, {1}), be);
  Tensor out = mul(be, terms.front().second, c0);
  for (std::size_t k = 1; k < terms.size(); ++k)
    out = add_scaled(be, out, terms[k].second, static_cast<float>(terms[k].first));
  return out;
}

}  // namespace

const char* sampler_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::rectified_flow:
      return "rflow";
    case SamplerKind::unipc:
      return "unipc";
    case SamplerKind::euler:
      return "euler";
  }
  return "?";
}

SamplerKind parse_sampler(std::string_view name) {
  for (const SamplerKind k : {SamplerKind::rectified_flow, SamplerKind::unipc, SamplerKind::euler})
    if (name == sampler_name(k)) return k;
  throw InvalidArgument("sampler: unknown sampler '" + std::string(name) +
                        "'; known: rflow, unipc, euler");
}

namespace {

// The shifted sigmas in float64, before Wan stores them as float32.
std::vector<double> shifted_sigmas(int steps, double shift) {
  DITSERVE_CHECK(steps >= 1, "steps: must be >= 1, got ", steps);
  DITSERVE_CHECK(std::isfinite(shift) && shift > 0.0, "shift: must be > 0, got ", shift);
  // Wan's training sigmas run from sigma_max = float32(1 - 1/1000) to sigma_min = 0.
  const double sigma_max = static_cast<float>(1.0 - 1.0 / kTrainTimesteps);
  std::vector<double> sigmas;
  sigmas.reserve(static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const double s = sigma_max - sigma_max * static_cast<double>(i) / steps;
    sigmas.push_back(shift * s / (1.0 + (shift - 1.0) * s));
  }
  return sigmas;
}

}  // namespace

std::vector<double> flow_sigmas(int steps, double shift) {
  std::vector<double> sigmas;
  for (const double s : shifted_sigmas(steps, shift)) sigmas.push_back(static_cast<float>(s));
  sigmas.push_back(0.0);
  return sigmas;
}

std::vector<float> flow_timesteps(int steps, double shift) {
  std::vector<float> out;
  for (const double s : shifted_sigmas(steps, shift))
    out.push_back(static_cast<float>(std::trunc(s * kTrainTimesteps)));
  return out;
}

Tensor flow_euler_step(Backend& be, const Tensor& sample, const Tensor& velocity, double sigma,
                       double sigma_next) {
  return add_scaled(be, sample, velocity, static_cast<float>(sigma_next - sigma));
}

FlowUniPC::FlowUniPC(std::vector<double> sigmas, int order, std::size_t start_step)
    : sigmas_(std::move(sigmas)), order_(order), index_(start_step) {
  DITSERVE_CHECK(order == 1 || order == 2, "FlowUniPC: order must be 1 or 2, got ", order);
  DITSERVE_CHECK(sigmas_.size() >= 2, "FlowUniPC: needs at least 2 sigmas, got ", sigmas_.size());
  DITSERVE_CHECK(start_step < sigmas_.size(), "step: a schedule of ", sigmas_.size() - 1,
                 " steps cannot resume at step ", start_step);
}

FlowUniPC::FlowUniPC(std::vector<double> sigmas, int order, std::size_t start_step,
                     History history)
    : FlowUniPC(std::move(sigmas), order, start_step) {
  // A run after n >= 1 steps holds min(n, order) predictions and the sample of its last
  // predictor; before its first step, nothing.
  const std::size_t want = std::min<std::size_t>(start_step, static_cast<std::size_t>(order));
  DITSERVE_CHECK(history.x0.size() == want && history.last_sample.defined() == (start_step > 0),
                 "history: a UniPC state at step ", start_step, " holds ", want,
                 " predictions and ", start_step > 0 ? "a" : "no", " last sample, got ",
                 history.x0.size(), " and ", history.last_sample.defined() ? "a" : "no",
                 " last sample");
  DITSERVE_CHECK(history.lower_order_nums >= 0 && history.lower_order_nums <= order &&
                     history.this_order >= 1 && history.this_order <= order,
                 "history: orders out of range (lower_order_nums ", history.lower_order_nums,
                 ", this_order ", history.this_order, ", order ", order, ")");
  for (const Tensor& t : history.x0)
    DITSERVE_CHECK(t.defined() && t.shape() == history.last_sample.shape(),
                   "history: predictions and the last sample differ in shape");
  lower_order_nums_ = history.lower_order_nums;
  this_order_ = history.this_order;
  last_sample_ = std::move(history.last_sample);
  x0_ = std::move(history.x0);
}

// UniP-p (bh2, x0 form) from sigmas_[i] to sigmas_[i+1]; x0_.back() is the prediction at i.
Tensor FlowUniPC::predict(Backend& be, const Tensor& x, int order) const {
  const std::size_t i = index_;
  const double sigma_t = sigmas_[i + 1], sigma_s0 = sigmas_[i];
  const Tensor& m0 = x0_.back();
  // At sigma 0 (the last step, always order 1) the update is the x0 prediction itself.
  if (sigma_t == 0.0) return m0;
  const double alpha_t = 1.0 - sigma_t;
  const double h = lambda_of(sigma_t) - lambda_of(sigma_s0);
  const double h_phi_1 = std::expm1(-h);
  const double b_h = std::expm1(-h);  // bh2
  std::vector<std::pair<double, Tensor>> terms{{sigma_t / sigma_s0, x}, {-alpha_t * h_phi_1, m0}};
  if (order == 2) {
    // D1 = (m1 - m0) / r1 with rho_p = 0.5.
    const double r1 = (lambda_of(sigmas_[i - 1]) - lambda_of(sigma_s0)) / h;
    const double c = -alpha_t * b_h * 0.5 / r1;
    terms.push_back({c, x0_[x0_.size() - 2]});
    terms.push_back({-c, m0});
  }
  return combine(be, terms);
}

// UniC-p (bh2) at sigmas_[i]: re-derives the sample from last_sample_ with the new
// prediction `x0` (x0_ still ends with the prediction at i - 1).
Tensor FlowUniPC::correct(Backend& be, const Tensor& x0, const Tensor& /*sample*/) const {
  const std::size_t i = index_;
  const int order = this_order_;
  const double sigma_t = sigmas_[i], sigma_s0 = sigmas_[i - 1];
  const double alpha_t = 1.0 - sigma_t;
  const double h = lambda_of(sigma_t) - lambda_of(sigma_s0);
  const double hh = -h;
  const double h_phi_1 = std::expm1(hh);
  const double b_h = std::expm1(hh);
  const Tensor& m0 = x0_.back();
  std::vector<std::pair<double, Tensor>> terms{{sigma_t / sigma_s0, last_sample_},
                                               {-alpha_t * h_phi_1, m0}};
  double rho_t = 0.5;  // the weight of D1_t = x0 - m0
  if (order == 2) {
    // b_k = h_phi_k * k! / B(h) for k = 1, 2; R = [[1, 1], [r1, 1]]; rho = R^-1 b.
    double h_phi_k = h_phi_1 / hh - 1.0;
    const double b1 = h_phi_k / b_h;
    h_phi_k = h_phi_k / hh - 0.5;
    const double b2 = h_phi_k * 2.0 / b_h;
    const double r1 = (lambda_of(sigmas_[i - 2]) - lambda_of(sigma_s0)) / h;
    const double rho_1 = (b1 - b2) / (1.0 - r1);
    rho_t = b1 - rho_1;
    const double c = -alpha_t * b_h * rho_1 / r1;  // times D1 = (m1 - m0) / r1
    terms.push_back({c, x0_[x0_.size() - 2]});
    terms.push_back({-c, m0});
  }
  terms.push_back({-alpha_t * b_h * rho_t, x0});
  terms.push_back({alpha_t * b_h * rho_t, m0});
  return combine(be, terms);
}

Tensor FlowUniPC::step(Backend& be, const Tensor& velocity, const Tensor& sample) {
  DITSERVE_CHECK(!done(), "FlowUniPC: all ", sigmas_.size() - 1, " steps are done");
  const std::size_t steps = sigmas_.size() - 1;
  const Tensor x0 = add_scaled(be, sample, velocity, static_cast<float>(-sigmas_[index_]));
  Tensor x = sample;
  if (index_ > 0 && last_sample_.defined()) x = correct(be, x0, sample);

  x0_.push_back(x0);
  if (x0_.size() > static_cast<std::size_t>(order_)) x0_.erase(x0_.begin());
  // lower_order_final, then the warm-up of the multistep history.
  const int remaining = static_cast<int>(steps - index_);
  this_order_ = std::min({order_, remaining, lower_order_nums_ + 1});
  last_sample_ = x;
  const Tensor next = predict(be, x, this_order_);
  lower_order_nums_ = std::min(lower_order_nums_ + 1, order_);
  ++index_;
  return next;
}

void FlowUniPC::move_to(Backend& from, Backend& to) {
  if (last_sample_.defined()) last_sample_ = transfer(from, last_sample_, to);
  for (Tensor& t : x0_) t = transfer(from, t, to);
}

}  // namespace ditserve
