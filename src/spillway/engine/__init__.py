"""Work done away from requests: retention now; schedules, streams and jobs later."""
