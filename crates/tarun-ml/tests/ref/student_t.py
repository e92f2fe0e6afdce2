"""Checks the Student-t 97.5 % quantiles pasted into crates/tarun-ml/src/metrics/gap.rs's tests:
the CDF, integrated from the density by Simpson's rule, must be 0.975 at each (standard table
values, as scipy.stats.t.ppf(0.975, df) gives them).

Run: python3 crates/tarun-ml/tests/ref/student_t.py
"""
import math
def pdf(x,n): return math.exp(math.lgamma((n+1)/2)-math.lgamma(n/2))/math.sqrt(n*math.pi)*(1+x*x/n)**(-(n+1)/2)
def cdf(x,n,steps=200000):
    # 0.5 + integral 0..x by Simpson
    h=x/steps; s=pdf(0,n)+pdf(x,n)
    for i in range(1,steps): s+= (4 if i%2 else 2)*pdf(i*h,n)
    return 0.5+s*h/3
for n,t in [(1,12.7062047362),(2,4.3026527297),(3,3.1824463053),(4,2.7764451052),(9,2.2621571628),(29,2.0452296421),(100,1.9839715185)]:
    print(n,t,cdf(t,n))
