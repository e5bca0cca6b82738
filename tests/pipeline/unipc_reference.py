# A literal scalar transcription of Wan 2.1's FlowUniPCMultistepScheduler
# (wan/utils/fm_solvers_unipc.py: bh2, solver_order 2, predict_x0, lower_order_final,
# flow prediction) on the Gaussian flow of flow_matching_test.cc, written independently of
# the C++ solver. It printed the reference sequence that test embeds
# (FlowUniPCTest.MatchesWansSchedulerSequence) and the convergence table behind the
# thresholds of FlowUniPCTest.ConvergesAtSecondOrder. Run: python3 unipc_reference.py
# literal scalar transcription of Wan's FlowUniPCMultistepScheduler (bh2, order 2, predict_x0)
import math
def sigmas_for(N, shift):
    smax = 0.9990000128746033; smin = 0.0
    s = [smax + (smin - smax) * i / N for i in range(N + 1)][:-1]
    s = [shift * x / (1 + (shift - 1) * x) for x in s]
    return s + [0.0]
def lam(s):
    a = 1 - s
    return math.log(a) - math.log(s) if s > 0 else float('inf')
class UniPC:
    def __init__(self, sig, order=2):
        self.sig = sig; self.order = order; self.mo = [None]*order; self.lon = 0; self.last = None; self.i = 0; self.N = len(sig)-1
    def coef(self, hh, order, rks):
        h_phi_1 = math.expm1(hh); h_phi_k = h_phi_1/hh - 1; fac = 1; B_h = math.expm1(hh)
        b = []
        for i in range(1, order+1):
            b.append(h_phi_k*fac/B_h); fac *= i+1; h_phi_k = h_phi_k/hh - 1/fac
        return h_phi_1, B_h, b
    def unip(self, x, order):
        i = self.i; st, s0 = self.sig[i+1], self.sig[i]
        at = 1-st; m0 = self.mo[-1]
        h = lam(st) - lam(s0); hh = -h
        h_phi_1 = math.expm1(hh); B_h = math.expm1(hh)
        D1 = None
        if order == 2:
            rk = (lam(self.sig[i-1]) - lam(s0))/h; D1 = (self.mo[-2]-m0)/rk
        xt = st/s0*x - at*h_phi_1*m0
        if D1 is not None: xt = xt - at*B_h*0.5*D1
        return xt
    def unic(self, mt, last, order):
        i = self.i; st, s0 = self.sig[i], self.sig[i-1]
        at = 1-st; m0 = self.mo[-1]
        h = lam(st)-lam(s0); hh = -h
        rks = []; D1s = []
        for k in range(1, order):
            rk = (lam(self.sig[i-(k+1)]) - lam(s0))/h; rks.append(rk); D1s.append((self.mo[-(k+1)]-m0)/rk)
        rks.append(1.0)
        h_phi_1, B_h, b = self.coef(hh, order, rks)
        if order == 1: rho = [0.5]
        else:
            r1 = rks[0]; rho0 = (b[0]-b[1])/(1-r1); rho = [rho0, b[0]-rho0]
        xt = st/s0*last - at*h_phi_1*m0
        corr = rho[0]*D1s[0] if D1s else 0
        return xt - at*B_h*(corr + rho[-1]*(mt-m0))
    def step(self, v, x):
        x0 = x - self.sig[self.i]*v
        if self.i > 0 and self.last is not None:
            x = self.unic(x0, self.last, self.this_order)
        self.mo = self.mo[1:] + [x0]
        this = min(self.order, self.N - self.i)
        self.this_order = min(this, self.lon+1)
        self.last = x
        xn = self.unip(x, self.this_order)
        if self.lon < self.order: self.lon += 1
        self.i += 1
        return xn
mu, s = 0.3, 0.5
g = lambda q: (1-q)**2*s*s + q*q
ex = lambda q, z: (1-q)*mu + math.sqrt(g(q))*z
vel = lambda x, q: -mu + (-2*(1-q)*s*s + 2*q)/(2*g(q))*(x-(1-q)*mu)
for shift in (1.0, 5.0):
  for N in (8, 16, 32, 64):
    sig = sigmas_for(N, shift)
    err = 0; eu = 0
    for z in (-1.5, -0.3, 0.7, 2.0):
        u = UniPC(sig); x = ex(sig[0], z); y = x
        for i in range(N):
            x = u.step(vel(x, sig[i]), x)
            y = y + (sig[i+1]-sig[i])*vel(y, sig[i])
        err = max(err, abs(x - ex(0, z))); eu = max(eu, abs(y-ex(0,z)))
    print(shift, N, err, eu)
print("---")
for shift in (1.0, 5.0):
  for N in (32, 64, 128, 256):
    sig = sigmas_for(N, shift); err = 0
    for z in (-1.5, -0.3, 0.7, 2.0):
        u = UniPC(sig); x = ex(sig[0], z)
        for i in range(N): x = u.step(vel(x, sig[i]), x)
        err = max(err, abs(x - ex(0, z)))
    print(shift, N, err)
print("--- reference sequence, shift 5, N 6, z 0.7")
sig = sigmas_for(6, 5.0); u = UniPC(sig); x = ex(sig[0], 0.7); print(repr(x))
for i in range(6):
    x = u.step(vel(x, sig[i]), x); print(repr(x))
