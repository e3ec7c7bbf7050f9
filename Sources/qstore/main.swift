print("qstore")
