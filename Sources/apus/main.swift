import Apus
print("apus")
