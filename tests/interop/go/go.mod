module agentlock-interop

go 1.19
